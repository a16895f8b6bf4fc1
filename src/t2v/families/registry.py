"""The family registry, as the runner and the front ends use it: families found by name, by pipeline class or by a
folder, every family for listings, and the tiny random-weight builders. It reads the process's catalogue
(:data:`t2v.models.catalog.CATALOG`): the families' cards are known without importing any family module, and a
family's module is imported the first time that family is used."""

from __future__ import annotations

from pathlib import Path

from t2v.families.base import Family
from t2v.models.catalog import CATALOG, ENTRY_POINT_GROUP

__all__ = ["ENTRY_POINT_GROUP", "all_families", "family_for_pipeline", "family_of_folder", "get_family",
           "make_tiny_model", "register_family", "tiny_builders"]


def register_family(family: Family | type[Family]) -> Family:
    """Add a family (a class or an instance); a later one with the same name replaces the earlier."""
    return CATALOG.register(family)


def all_families() -> dict[str, Family]:
    """Every family, t2v's own then the ``t2v.families`` entry points' (each module imported)."""
    return CATALOG.all_families()


def get_family(name: str) -> Family:
    return CATALOG.family(name)


def family_for_pipeline(class_name: str) -> Family | None:
    card = CATALOG.card_for_pipeline(class_name)
    return None if card is None else CATALOG.family(card.name)


def family_of_folder(path: Path) -> Family:
    """The family of a diffusers folder (:meth:`t2v.models.catalog.Catalog.card_of_folder`)."""
    return CATALOG.family_of_folder(path)


def tiny_builders() -> dict[str, tuple[Family, str]]:
    """`t2v models make-tiny --family` names -> (the family, builder reference); every family is imported."""
    return {name: (CATALOG.family(card.name), ref) for name, (card, ref) in CATALOG.tiny_builders().items()}


def make_tiny_model(kind: str, out: Path, *, seed: int = 0, fp16_variant: bool = True) -> Path:
    return CATALOG.make_tiny_model(kind, out, seed=seed, fp16_variant=fp16_variant)
