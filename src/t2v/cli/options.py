"""Typer options derived from the request contract: a command that takes a request's fields gets one option per
field of its request class (the field's CLI spelling, help, environment variable; :func:`t2v.requests.knob`),
the post-processing block's fields as flat flags (``--deflicker``, ``--upscale`` ...), and each model family's
own settings (its extras schema, :mod:`t2v.models.hub`) as flags too. Nothing about a field is declared here."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from rich.markup import escape

from t2v.models.hub import CARDS
from t2v.requests import PostSpec, applies, cli_spelling, field_meta, post_from_flags

FIELD, POST, EXTRA = "field", "post", "extra"


@dataclass(frozen=True)
class Flag:
    """One derived option: the request field (or post step field, or family extra) it sets."""

    name: str
    kind: str  # FIELD, POST or EXTRA
    names: tuple[str, ...]  # its CLI spellings
    param: inspect.Parameter


def cli_type(annotation: Any) -> tuple[Any, bool]:
    """(the option's Python type, is a flag) for a field's annotation; None for a field the CLI cannot take."""
    args = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) is Union or \
        type(annotation).__name__ == "UnionType" else [annotation]
    kind = args[0] if len(args) == 1 else None
    if kind is bool:
        return bool, True
    if kind in (int, float, str):
        return Optional[kind], False
    if get_origin(kind) is tuple:
        inner = get_args(kind)[0]
        repeatable = inner in (str,) or get_origin(inner) is tuple or (isinstance(inner, type) and issubclass(inner, BaseModel))
        return (Optional[List[str]], False) if repeatable else (Optional[str], False)  # a model: parsed from text
    return None, False


def _help(text: str, default: Any) -> str:
    """The option's help: the field's, with its default; ``[...]`` (``[default: ...]``, ``[rife]``) escaped, so Rich's
    help shows it as text instead of reading it as markup."""
    if default not in (None, False, (), {}) and "default" not in text.lower():
        shown = default if not isinstance(default, tuple) else ", ".join(map(str, default))
        text = f"{text} (default: {shown})"
    return escape(text)


def _option(name: str, annotation: Any, flag: bool, names: list[str], help_text: str, env: str | None,
            default: Any) -> inspect.Parameter:
    opt = typer.Option(False if flag else None, *names, help=_help(help_text, default), envvar=env, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=bool if flag else annotation)


def _fields_first_own(model: type[BaseModel]) -> list[str]:
    """The model's fields, those it declares itself first (their short flags win over inherited ones)."""
    own = [n for n in model.model_fields if n in model.__dict__.get("__annotations__", {})]
    return own + [n for n in model.model_fields if n not in own]


def request_flags(model: type[BaseModel], mode: str, *, post: bool = False, extras: bool = False,
                  taken: set[str] = frozenset(), only: tuple[str, ...] | None = None) -> list[Flag]:
    """The options of ``model``'s fields for a ``mode`` command (``only``: just these fields), plus the post
    block's (``post``) and the families' extras (``extras``); a spelling in ``taken`` (the command's own
    options, or a field declared on ``model`` itself) is left to its first owner."""
    used, flags = set(taken), {}
    sources: list[tuple[str, type[BaseModel], str]] = [(n, model, FIELD) for n in _fields_first_own(model)]
    if post:
        sources += [(n, PostSpec, POST) for n in PostSpec.model_fields]
    for name, owner, kind in sources:
        if (only is not None and kind == FIELD and name not in only) or name in flags:
            continue
        names = cli_spelling(owner, name)
        info = owner.model_fields[name]
        annotation, flag = cli_type(info.annotation)
        if not names or annotation is None or (kind == FIELD and not applies(owner, name, mode)):
            continue
        names = [n for n in names if n not in used]
        used.update(names)
        param = _option(name, annotation, flag, names, info.description or "", field_meta(owner, name).get("env"),
                        info.default)
        flags[name] = Flag(name, kind, tuple(names), param)
    if extras:
        for name, (schema, helps) in family_extras().items():
            names = [n for n in cli_spelling(schema, name) if n not in used]
            used.update(names)
            annotation, flag = cli_type(schema.model_fields[name].annotation)
            flags[name] = Flag(name, EXTRA, tuple(names), _option(name, annotation, flag, names, " ".join(helps),
                                                                  None, None))
    order = [n for n, _, _ in sources if n in flags] + [n for n in flags if flags[n].kind == EXTRA]
    return [flags[n] for n in order]


def family_extras() -> dict[str, tuple[type[BaseModel], list[str]]]:
    """Every family's own settings by name: (the first schema declaring it, each declaring family's help)."""
    out: dict[str, tuple[type[BaseModel], list[str]]] = {}
    for card in CARDS:
        if card.extras is None:
            continue
        for name, info in card.extras.model_fields.items():
            schema, helps = out.setdefault(name, (card.extras, []))
            if info.description and info.description not in helps:
                helps.append(info.description)
    return out


def fields_from(flags: list[Flag], values: dict[str, Any]) -> dict[str, Any]:
    """The request fields the given options set: options left out (None, or a flag not set) are not fields, so
    the request's own defaults apply; post-processing flags make the ``post`` block, family flags ``extras``."""
    out: dict[str, Any] = {}
    post_flags: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for flag in flags:
        value = values.get(flag.name)
        if value is None or value is False:
            continue
        value = tuple(value) if isinstance(value, list) else value
        {FIELD: out, POST: post_flags, EXTRA: extras}[flag.kind][flag.name] = value
    block = post_from_flags(**post_flags)
    if block:
        out["post"] = block
    if extras:
        out["extras"] = extras
    return out


def with_request_options(model: type[BaseModel], mode: str, *, post: bool = False, extras: bool = False,
                         only: tuple[str, ...] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command ``fn(<its own parameters>, fields: dict)`` the request's options: Typer sees ``fn``'s own
    parameters and then the derived ones; ``fn`` gets the request fields given as ``fields``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        own = [p for name, p in signature.parameters.items() if name != "fields"]
        taken = {n for p in own for n in getattr(p.default, "param_decls", ()) or ()}
        flags = request_flags(model, mode, post=post, extras=extras, taken=taken, only=only)

        @functools.wraps(fn)
        def command(**values: Any) -> Any:
            mine = {p.name: values.pop(p.name) for p in own if p.name in values}
            return fn(**mine, fields=fields_from(flags, values))

        command.__signature__ = signature.replace(parameters=[*own, *(f.param for f in flags)])  # type: ignore[attr-defined]
        command.request_flags = flags  # type: ignore[attr-defined]  (for the tests and the README's table)
        return command

    return decorate


def option(model: type[BaseModel], name: str) -> Any:
    """The Typer option of one contract field, for a command that lists it among its own parameters (a
    command that is not a request, like ``t2v eval shapes``)."""
    info = model.model_fields[name]
    annotation, flag = cli_type(info.annotation)
    return _option(name, annotation, flag, cli_spelling(model, name), info.description or "",
                   field_meta(model, name).get("env"), info.default).default
