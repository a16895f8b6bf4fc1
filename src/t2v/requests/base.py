"""What every request type shares: the frozen base model that raises :class:`~t2v.errors.InvalidRequest`, and
:func:`knob`, the one declaration of a field (type, range, default, help, CLI spelling, surfaces).

A field's metadata is kept in its JSON schema under ``x-t2v`` so it travels with the model: the CLI builds its
options from it (:func:`cli_spelling`), the API keeps or drops it per surface (:func:`on_surface`), and the
README's flag table is generated from it.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from t2v.errors import InvalidRequest

# Where a field appears. "api": REST bodies (POST /v1/videos ...); "cli": Typer options; "record": the JSON record.
SURFACES = ("api", "cli")
#: The kinds of input file a field can name (``knob(file=...)``).
FILE_KINDS = ("image", "video")


def knob(default: Any = ..., *, help: str, cli: str | tuple[str, ...] | None = None, api: bool = True,
         env: str | None = None, only: tuple[str, ...] | None = None, file: str | None = None,
         **constraints: Any) -> Any:
    """Declare a request field once: its default, ``help`` (the CLI's, the API's and the forms' text), the CLI
    spelling (``"--frames -f"``; default ``--field-name``; ``cli=""`` keeps it off the CLI), whether the REST
    bodies take it (``api=False``: the server's own setting), the environment variable a CLI option falls back
    to, the modes whose requests use it (``only``; default every mode that has the field), the kind of input
    file it names (``file``: ``"image"`` or ``"video"``; a path for the library and CLI, an uploaded asset id on a
    server), and pydantic's constraints (``ge``, ``le``, ``max_length`` ...)."""
    meta: dict[str, Any] = {"api": api}
    if file is not None:
        if file not in FILE_KINDS:
            raise ValueError(f"file: {file!r}; one of {', '.join(FILE_KINDS)}")
        meta["file"] = file
    if only is not None:
        meta["only"] = list(only)
    if cli is not None:
        meta["cli"] = cli.split() if isinstance(cli, str) else list(cli)
    if env:
        meta["env"] = env
    return Field(default, description=help, json_schema_extra={"x-t2v": meta}, **constraints)


def field_meta(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The ``x-t2v`` metadata of ``model``'s field ``name`` ({} for a field declared without :func:`knob`)."""
    extra = model.model_fields[name].json_schema_extra
    return dict(extra.get("x-t2v", {})) if isinstance(extra, dict) else {}


def file_fields(model: type[BaseModel]) -> dict[str, str]:
    """The fields of ``model`` that name input files, in declaration order: name -> kind (``"image"`` or
    ``"video"``); a tuple-valued one names several."""
    return {name: kind for name in model.model_fields if (kind := field_meta(model, name).get("file"))}


def cli_spelling(model: type[BaseModel], name: str) -> list[str]:
    """The CLI option names of a field (``["--frames", "-f"]``); [] when the field has no option."""
    meta = field_meta(model, name)
    if "cli" in meta:
        return list(meta["cli"])
    return ["--" + name.replace("_", "-")]


def on_surface(model: type[BaseModel], name: str, surface: str) -> bool:
    """Whether field ``name`` of ``model`` is taken on ``surface`` ("api" or "cli")."""
    if surface == "cli":
        return bool(cli_spelling(model, name))
    return field_meta(model, name).get("api", True)


def applies(model: type[BaseModel], name: str, mode: str) -> bool:
    """Whether field ``name`` of ``model`` is taken by requests of ``mode`` (the knob's ``only``; default every
    mode that has the field)."""
    only = field_meta(model, name).get("only")
    return only is None or mode in only


_FIELD_NAMES: set[str] = set()  # every request field, for naming the field of a whole-request check
_MODELS: list[type[BaseModel]] = []  # every request model, for the hint of an unknown field


def unknown_field_hint(name: str, model: type[BaseModel] | None = None) -> str:
    """What an unknown field ``name`` most likely meant, as ``"; did you mean X?"``: the field whose CLI option
    it spells (``steps`` is ``--steps``, ``num_inference_steps``), else the nearest field name of ``model`` (of every
    request model when None); "" when nothing is near."""
    fields: dict[str, str] = {}  # a field's name and its CLI options' long names -> the field
    options: dict[str, str] = {}
    for m in [model] if model is not None else _MODELS:
        for field in m.model_fields:
            fields.setdefault(field, field)
            for spelling in cli_spelling(m, field):
                if spelling.startswith("--"):
                    options.setdefault(spelling[2:].replace("-", "_"), field)
    key = name.lstrip("-").replace("-", "_").lower()
    if key in options and key not in fields:
        return f"; did you mean {options[key]}? (the CLI's --{key.replace('_', '-')})"
    near = difflib.get_close_matches(key, sorted({**options, **fields}), n=1, cutoff=0.75)
    if not near:
        return ""
    target = fields.get(near[0]) or options[near[0]]
    return f"; did you mean {target}?" if target != name else ""


class _RefusingMeta(type(BaseModel)):  # type: ignore[misc]
    """Building a request class (``GenerationRequest(...)``) raises InvalidRequest. Done in the metaclass, not in
    ``__init__``: a custom ``__init__`` would be called for nested models too, moving their errors' locations."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as e:
            raise invalid_from_validation(e, model=cls) from None


class RequestModel(BaseModel, metaclass=_RefusingMeta):
    """Base of the request types: frozen, unknown fields refused, NaN and infinity refused; building one with a
    bad value raises :class:`~t2v.errors.InvalidRequest` naming the field (not pydantic's ValidationError)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _FIELD_NAMES.update(cls.model_fields)
        _MODELS.append(cls)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:  # noqa: D102  InvalidRequest, as the constructor
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as e:
            raise invalid_from_validation(e, model=cls) from None

    @classmethod
    def create(cls, **fields: Any) -> Any:
        """Build a request (the constructor does the same; kept for callers that spell it so)."""
        return cls(**fields)


def validated(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    """``model(**fields)``, pydantic's errors turned into one ``InvalidRequest`` naming the field."""
    try:
        return model(**fields)
    except ValidationError as e:
        raise invalid_from_validation(e, model=model) from None


def invalid_from_validation(e: ValidationError, *, tagged: bool = False,
                            model: type[BaseModel] | None = None) -> InvalidRequest:
    """One InvalidRequest naming the first field at fault (``tagged``: errors of a discriminated union, whose
    locations start with the mode); an unknown field of ``model`` (or of a nested or tagged one) names the field
    it most likely meant."""
    err = e.errors()[0]
    loc_parts = err.get("loc", ())[1:] if tagged else err.get("loc", ())
    loc = ".".join(str(p) for p in loc_parts) or "request"
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    kind, ctx = err.get("type"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        top = model if len(loc_parts) == 1 else None  # a nested model's field: any request model's
        msg = "unknown field" + unknown_field_hint(str(loc_parts[-1]) if loc_parts else loc, top)
    elif kind in ("greater_than_equal", "less_than_equal") and "input" in err:
        bound = ctx.get("ge", ctx.get("le"))
        msg = f"{msg}, got {err['input']!r}; nearest valid: {bound}"
    inner = ctx.get("error")
    if loc_parts and isinstance(inner, InvalidRequest) and inner.field and inner.field != str(loc_parts[-1]):
        # a nested request model's own refusal (its field under this one)
        loc = f"{loc}.{inner.field}"
        return InvalidRequest(f"{loc}: {str(inner).removeprefix(inner.field + ': ')}", field=loc)
    named = re.match(r"^([a-z_0-9]+): ", msg)
    if not loc_parts and named and named.group(1) in _FIELD_NAMES:  # a whole-request check naming its field
        return InvalidRequest(msg, field=named.group(1))
    return InvalidRequest(f"{loc}: {msg}", field=loc)
