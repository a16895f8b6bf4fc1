"""Stacked LoRA adapters in a request: each with its own strength and, for a model with two denoising experts
(Wan 2.2 A14B: high noise, then low noise), the experts it applies to and a strength per expert.

The API takes ``{"path": ..., "scale": 1.0, "experts": "both", "scale_low": 0.5}``; the CLI (and anywhere a
string is given) ``PATH[:SCALE[/SCALE_LOW]][@high|@low|@both]``, e.g. ``fast.safetensors:1.0`` or
``style:0.8/0.4``. A request of before, with one ``lora`` and ``lora_scale``, reads as one entry."""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EXPERTS = ("both", "high", "low")
MAX_LORAS = 8
SCALE_RANGE = (-4.0, 4.0)
_TAIL = re.compile(r"^(?P<path>.+?)(?::(?P<scale>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)"
                   r"(?:/(?P<low>[-+]?[0-9.]+(?:[eE][-+]?\d+)?))?)?(?:@(?P<experts>both|high|low))?$")


class LoraSpec(BaseModel):
    """One adapter of a request: where it is, how strong, and which experts it reaches."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    path: str = Field(..., min_length=1, max_length=4096, description=(
        "The adapter: a LoRA .safetensors file or a folder (diffusers' pytorch_lora_weights.safetensors, a Wan 2.2 "
        "folder with *high_noise* / *low_noise* files, or a t2v train-lora folder); on a server, under its model "
        "roots. 'id' is taken as another name for it."))
    scale: float | None = Field(None, ge=SCALE_RANGE[0], le=SCALE_RANGE[1], description=(
        "Strength, 0 = off, 1 = as trained (default: the request's lora_scale). For a two-expert model, the "
        "high-noise expert's."))
    scale_low: float | None = Field(None, ge=SCALE_RANGE[0], le=SCALE_RANGE[1], description=(
        "A two-expert model's low-noise strength, when it differs from scale."))
    experts: Literal["both", "high", "low"] = Field("both", description=(
        "A two-expert model (Wan 2.2 A14B): the experts this adapter applies to: both, high (noise) or low."))

    @model_validator(mode="before")
    @classmethod
    def _from_text_or_id(cls, data: Any) -> Any:
        if isinstance(data, str):
            return parse_lora(data)
        if isinstance(data, dict) and "id" in data and "path" not in data:
            data = {**data, "path": data["id"]}
            data.pop("id")
        return data

    def scales(self, default: float) -> tuple[float, float]:
        """(high or only expert's strength, low expert's strength) with ``default`` where none is given."""
        high = default if self.scale is None else self.scale
        return high, high if self.scale_low is None else self.scale_low


def parse_lora(text: str) -> dict[str, Any]:
    """``"style.safetensors:0.8/0.4@both"`` -> ``{"path": ..., "scale": 0.8, "scale_low": 0.4, "experts": "both"}``.
    A tail that is not a number stays part of the path (``C:/loras/x``)."""
    m = _TAIL.match(text.strip())
    if not m:
        return {"path": text}
    out: dict[str, Any] = {"path": m["path"]}
    for key, name in (("scale", "scale"), ("low", "scale_low")):
        if m[key] is not None:
            try:
                value = float(m[key])
            except ValueError:
                return {"path": text}
            if not math.isfinite(value):
                raise ValueError(f"lora: {m[key]} is not a finite strength")
            out[name] = value
    if m["experts"]:
        out["experts"] = m["experts"]
    return out


def move_single_lora(data: Any) -> Any:
    """A request or body of before (``lora``: one adapter, ``lora_scale`` its strength) as ``loras``."""
    if not isinstance(data, dict) or "lora" not in data:
        return data
    data = dict(data)
    single = data.pop("lora")
    if single is not None:
        if data.get("loras"):
            raise ValueError("loras: give the adapters in loras, or one in lora, not both")
        data["loras"] = [single]
    return data


def check_loras(loras: tuple[LoraSpec, ...]) -> tuple[LoraSpec, ...]:
    """At most :data:`MAX_LORAS`, each file once."""
    if len(loras) > MAX_LORAS:
        raise ValueError(f"loras: at most {MAX_LORAS} adapters, got {len(loras)}")
    seen: dict[str, int] = {}
    for i, spec in enumerate(loras):
        key = spec.path.rstrip("/")
        if key in seen:
            raise ValueError(f"entry {i} ({spec.path}) is entry {seen[key]} again; give each adapter once, with "
                             "its strength in scale")
        seen[key] = i
    return loras
