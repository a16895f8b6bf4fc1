"""A family's own settings (``extras``): knobs that only one model family has, like LTX-Video's decode timestep,
the second guidance of Wan 2.2 A14B and HunyuanVideo, or CogVideoX's dynamic CFG.

A request carries them as ``extras`` ({name: value}); the family declares them as a typed schema (a
:class:`FamilyExtras` subclass on its card, :mod:`t2v.models.hub`) with ranges and help, and
:func:`check_extras` validates a request's extras against it once the model (so the family) is known: a setting
the family does not have is refused naming the field and the family. Records and API bodies written before
extras existed carry some of these as top-level fields (:data:`FLAT_EXTRAS`); they still load.
"""

from __future__ import annotations

import math
from typing import Any

from t2v.errors import InvalidRequest
from t2v.requests.base import RequestModel

# Another name an API body may give an uploaded asset's field ("image_id": the asset id for image).
ASSET_ID_NAMES = {"image_id": "image", "last_image_id": "last_image"}
# Family settings that older records and bodies carry as top-level request fields.
FLAT_EXTRAS = ("guidance_scale_2", "decode_timestep", "decode_noise_scale")
Scalar = bool | int | float | str | None


class FamilyExtras(RequestModel):
    """Base of a family's extras schema: each field declared with :func:`~t2v.requests.base.knob` (type,
    range, default None = the model's default, help). The CLI offers each as ``--name`` on ``t2v generate``."""


def move_asset_ids(data: Any) -> Any:
    """``{"image_id": ID}`` -> ``{"image": ID}`` (and ``last_image_id``); both names at once is refused."""
    if not isinstance(data, dict) or not any(k in data for k in ASSET_ID_NAMES):
        return data
    data = dict(data)
    for alias, name in ASSET_ID_NAMES.items():
        if alias in data:
            if data.get(name) is not None:
                raise ValueError(f"{name}: give the asset id as {name} or as {alias}, not both")
            data[name] = data.pop(alias)
    return data


def move_flat_extras(data: Any) -> Any:
    """``{"decode_timestep": 0.05, ...}`` -> ``{"extras": {"decode_timestep": 0.05}, ...}`` for the settings of
    :data:`FLAT_EXTRAS` given at the top level (a value in ``extras`` wins)."""
    if not isinstance(data, dict) or not any(k in data for k in FLAT_EXTRAS):
        return data
    data = dict(data)
    flat = {k: data.pop(k) for k in FLAT_EXTRAS if k in data}
    extras = data.get("extras") or {}
    if not isinstance(extras, dict):
        return {**data, "extras": extras}  # the field's own check names it
    data["extras"] = {**{k: v for k, v in flat.items() if v is not None}, **extras}
    return data


def check_scalars(extras: dict[str, Any]) -> dict[str, Any]:
    """The request-level check (no family known yet): names that could be fields, JSON scalar values."""
    for name, value in extras.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"extras: {name!r} is not a setting name (letters, digits and _)")
        if not isinstance(value, (bool, int, float, str, type(None))):
            raise ValueError(f"extras.{name}: give a number, true/false or text, not a {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"extras.{name}: not a finite number")
    return {k: v for k, v in extras.items() if v is not None}


def check_extras(schema: type[FamilyExtras] | None, extras: dict[str, Any], *, family: str,
                 defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """``extras`` validated against ``family``'s schema (None: the family has no settings of its own), with the
    schema's settings the request leaves out filled from the model's ``defaults``. InvalidRequest names
    ``extras.<name>``, the family and what it takes."""
    fields = schema.model_fields if schema is not None else {}
    for name in extras:
        if name not in fields:
            takes = ", ".join(fields) or "none"
            raise InvalidRequest(f"extras.{name}: the {family} family has no such setting; it takes: {takes}",
                                 field=f"extras.{name}")
    filled = {**{k: v for k, v in (defaults or {}).items() if k in fields and v is not None}, **extras}
    if schema is None:
        return {}
    try:
        checked = schema(**filled)
    except InvalidRequest as e:
        raise InvalidRequest(f"extras.{e} ({family})", field=f"extras.{e.field}") from None
    return {k: v for k, v in checked.model_dump().items() if v is not None}
