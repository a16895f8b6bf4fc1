"""What one bench compares: the family, the request both sides make, the stock call's extra arguments, and the
t2v side's plan (dtype, memory plan, step cache, attention kernel, compile).

A spec is a plain JSON-able dict, written beside the runs and read by :mod:`t2v.bench.worker`::

    {"family": "wan", "kind": "wan", "model": "/path", "pipeline": "WanPipeline",
     "request": {"prompt": ..., "negative_prompt": "", "num_frames": 9, "width": 64, "height": 32, "seed": 0,
                 "num_inference_steps": 2, "guidance_scale": 5.0, "scheduler": "model", "fps": 16, ...},
     "plan": {"dtype": "fp32", "memory": "auto", "cache": None, "attention": "auto", "compile": False},
     "stock": {...}}   # the family's extra keyword arguments of the stock pipeline call

The extra stock arguments and the bench's request for a family's tiny model are the family's card's
(``FamilyCard.stock``, ``FamilyCard.bench``): e.g. Wan's ``max_sequence_length=512`` (and ``guidance_scale_2`` for
the two-expert A14B), LTX-Video's ``frame_rate``, decode timestep/noise, guidance rescale and custom timesteps,
HunyuanVideo's ``true_cfg_scale`` (t2v's ``guidance_scale_2``), as the per-family seed-contract tests call them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from t2v.bench import PROMPT, SEED, STEPS
from t2v.errors import InvalidRequest
from t2v.families import family_of_folder, tiny_builders
from t2v.requests import GenerationRequest, canonical_cache, invalid_from_validation
from t2v.families.base import read_index
from t2v.models.catalog import CATALOG
from t2v.models.source import model_defaults
from t2v.settings import get_settings
from t2v.families import get_family

DEFAULT_FAMILY = "modelscope"
# The request fields both sides share (t2v's names; the stock call spells them the same).
SHARED = ("prompt", "negative_prompt", "num_frames", "width", "height", "num_inference_steps", "guidance_scale")
# The request fields the t2v side gets besides SHARED (filled from the folder's defaults when left unset).
T2V_FIELDS = (*SHARED, "seed", "scheduler", "fps", "guidance_scale_2", "decode_timestep", "decode_noise_scale")
PLAN_DEFAULTS = {"dtype": "fp32", "memory": "auto", "cache": None, "attention": "auto", "compile": False}
# Seed contract: the same computation gives frames within this many levels of 255 on both sides.
TOLERANCE = 2


def family_choices() -> list[str]:
    """The ``t2v models make-tiny --family`` kinds that make a text-to-video folder (not image models, adapters
    or image-to-video-only folders): what ``t2v bench --family`` builds."""
    return sorted(k for k, (fam, _) in tiny_builders().items()
                  if "video" in fam.modes and not k.endswith(("-i2v", "-i2v-33ch", "-adapter")))


def plan_fields(*, dtype: str = "fp32", memory: str = "auto", cache: str | None = None, attention: str = "auto",
                compile: bool = False) -> dict:
    """The t2v side's plan as request fields (``cache`` None or an off-word: no step cache)."""
    try:
        cache = canonical_cache(cache)
    except InvalidRequest as e:
        raise InvalidRequest(f"--t2v-cache: {e}", field="cache") from None
    return {"dtype": dtype, "memory": memory, "cache": cache, "attention": attention, "compile": bool(compile)}


def plan_label(plan: dict) -> str:
    """``fp32`` for the default plan; else the dtype and every option that differs from the default."""
    parts = [plan.get("dtype", "fp32")]
    parts += [f"{k} {plan[k]}" for k in ("memory", "cache", "attention") if plan.get(k) != PLAN_DEFAULTS[k]]
    if plan.get("compile"):
        parts.append("compiled")
    return ", ".join(parts)


def exact_reason(plan: dict, plans_used: list[str]) -> str | None:
    """None when the t2v side ran the stock computation (so its frames must match within TOLERANCE); else why
    not (a step cache skips work, another dtype rounds differently, a non-speed plan may tile the decode)."""
    if plan.get("cache"):
        return f"t2v used the step cache {plan['cache']}"
    if plan.get("dtype", "fp32") != "fp32":
        return f"t2v computed in {plan['dtype']}, stock in fp32"
    other = sorted({p for p in plans_used if p != "speed"})
    if other:
        return f"t2v's memory plan {other[0]} may chunk or tile the work differently"
    return None


def _request(kind: str, fields: dict, plan: dict, model: str | None):
    from pydantic import ValidationError

    try:
        return GenerationRequest(prompt=PROMPT, model=model, formats=("mp4",), device="cpu", **fields, **plan)
    except ValidationError as e:
        raise invalid_from_validation(e) from None


def base_fields(family: str, *, size: int | None, frames: int | None, steps: int | None) -> dict:
    """The fields the bench sets: 2 steps of the model's own scheduler, over which the family's card sets its own
    (``FamilyCard.bench``: ModelScope's 8 frames, 2 DDIM steps, guidance 9 at 64x64); the rest from the folder's
    defaults."""
    card = CATALOG.card(family)
    fields = {"num_inference_steps": STEPS, "seed": SEED, "scheduler": "model", **(card.bench if card else {})}
    if size is not None:
        fields.update(width=size, height=size)
    fields["negative_prompt"] = ""
    if frames is not None:
        fields["num_frames"] = frames
    if steps is not None:
        fields["num_inference_steps"] = steps
    return fields


def _family_check(fam, request, folder: Path | None, model: str) -> None:
    """``fam.check``, its messages about the plan naming the bench's option (``--t2v-cache: ...``)."""
    try:
        fam.check(request, folder, model=model)
    except InvalidRequest as e:
        if e.field in PLAN_DEFAULTS:
            raise InvalidRequest(f"--t2v-{e}", field=e.field) from None
        raise


def check(*, family: str | None, folder: Path | None, size: int | None, frames: int | None, steps: int | None,
          plan: dict) -> str:
    """The family kind to bench (InvalidRequest for a bad one, a folder of another family, or a request or
    plan the family refuses), before anything is built or run. ``folder``: a checked model folder or None."""
    if folder is not None:
        fam = family_of_folder(folder)
        if family is not None and tiny_builders().get(family, (None,))[0] is not fam and family != fam.name:
            raise InvalidRequest(f"--family {family}: {folder} is a {fam.name} model; leave --family out with --model",
                                 field="family")
        kind = fam.name
        _family_check(fam, _request(kind, base_fields(fam.name, size=size, frames=frames, steps=steps), plan, str(folder)),
                      folder, str(folder))
        return kind
    kind = family or DEFAULT_FAMILY
    choices = family_choices()
    if kind not in choices:
        raise InvalidRequest(f"--family: unknown or not a text-to-video family {kind!r}; choose one of: "
                             f"{', '.join(choices)}", field="family")
    fam = tiny_builders()[kind][0]
    _family_check(fam, _request(kind, base_fields(fam.name, size=size, frames=frames, steps=steps), plan, None), None,
                  f"the tiny {kind} model")
    return kind


def build(kind: str, folder: Path, *, size: int | None, frames: int | None, steps: int | None, plan: dict) -> dict:
    """The spec for ``folder`` (a built or given model folder): the request resolved against the folder's own
    defaults and rules (as ``t2v generate`` would), and the stock call's extra arguments."""
    from t2v.runner.resolve import resolve  # deferred: imports PIL, numpy

    fam = family_of_folder(folder)
    req = resolve(_request(kind, base_fields(fam.name, size=size, frames=frames, steps=steps), plan, str(folder)),
                  get_settings())
    request = {k: getattr(req, k) for k in T2V_FIELDS}
    index = read_index(folder)
    _, defaults = model_defaults(str(folder), get_family)
    return {"family": fam.name, "kind": kind, "model": str(folder), "pipeline": index.get("_class_name"),
            "request": request, "plan": {k: getattr(req, k) for k in PLAN_DEFAULTS},
            "stock": stock_extra(fam.name, index, request, defaults)}


def stock_extra(family: str, index: dict, request: dict, defaults: dict) -> dict[str, Any]:
    """The stock call's family-specific keyword arguments, equivalent to t2v's request (the family's card's)."""
    card = CATALOG.card(family)
    return dict(card.stock(index, request, defaults)) if card else {}


def modelscope_spec(model: str, size: int, *, dtype: str = "fp32", memory: str = "auto") -> dict:
    """The original comparison's spec (the default family's, ModelScope's, at ``size``), without resolving (for
    ``worker.run(..., size=...)``)."""
    fps = float(CATALOG.card(DEFAULT_FAMILY).defaults["fps"])
    request = {"prompt": PROMPT, "fps": fps, "guidance_scale_2": None, "decode_timestep": None,
               "decode_noise_scale": None, **base_fields(DEFAULT_FAMILY, size=size, frames=None, steps=None)}
    return {"family": DEFAULT_FAMILY, "kind": DEFAULT_FAMILY, "model": model, "pipeline": None, "request": request,
            "plan": {**PLAN_DEFAULTS, "dtype": dtype, "memory": memory}, "stock": {}}


def write(spec: dict, path: Path) -> Path:
    path.write_text(json.dumps(spec, indent=1))
    return path
