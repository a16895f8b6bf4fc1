"""How ``--help`` shows parameters: switches without a value placeholder, arguments as ``PROMPT`` in usage lines.

Typer's rich help puts a type placeholder after every option, switches included (``--quiet <bool>``,
``--help <bool>``), and writes a required argument as ``{prompt}`` in the usage line. :func:`plain_help`
walks a built command tree once and gives every parameter (and each command's ``--help``) the classes below,
so a switch shows no value and a usage line reads ``t2v generate [OPTIONS] PROMPT``, as Click's own help does.
"""

from __future__ import annotations

from functools import lru_cache

from typer.core import TyperArgument, TyperOption


class PlainOption(TyperOption):
    """An option whose help shows a value placeholder only when it takes a value."""

    def display_type_rich(self, ctx):
        if self.is_flag or self.count:
            return None
        return super().display_type_rich(ctx)


class PlainArgument(TyperArgument):
    """An argument named in capitals (``PROMPT``), bare in a usage line when required, ``[PROMPT]`` when not."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def _plain_param(param) -> None:
    if isinstance(param, TyperOption) and not isinstance(param, PlainOption):
        param.__class__ = PlainOption
    elif isinstance(param, TyperArgument) and not isinstance(param, PlainArgument):
        param.__class__ = PlainArgument


def _plain_help_option(self, ctx):
    option = super(type(self), self).get_help_option(ctx)
    if option is not None:
        _plain_param(option)
    return option


@lru_cache(maxsize=None)
def _with_plain_help(cls: type) -> type:
    """``cls`` with a ``--help`` option that is a :class:`PlainOption` too."""
    if getattr(cls, "plain_help", False):
        return cls
    return type(cls.__name__, (cls,), {"__module__": cls.__module__, "plain_help": True,
                                         "get_help_option": _plain_help_option})


def plain_help(command) -> None:
    """Give ``command``, its parameters and every command under it the help display described above."""
    command.__class__ = _with_plain_help(type(command))
    for param in command.params:
        _plain_param(param)
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
