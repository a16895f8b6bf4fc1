"""Composition helper shared by :class:`t2v.store.Repository` and :class:`t2v.service.JobService`: an object built
of parts (each a small class of its own, held as an attribute) offers some of their methods under its own names."""

from __future__ import annotations

from typing import Any

__all__ = ["Part"]


class Part:
    """A class attribute naming a method (or property) of the part held in the owner's attribute ``part``, under
    the same name: ``create_key = Part("keys")`` makes ``repo.create_key`` the bound ``repo.keys.create_key``."""

    def __init__(self, part: str) -> None:
        self.part = part

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(getattr(obj, self.part), self.name)

    def __repr__(self) -> str:
        return f"Part({self.part!r}).{getattr(self, 'name', '?')}"
