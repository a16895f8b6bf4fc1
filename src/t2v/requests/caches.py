"""The speed options a request may carry, spelled and checked before anything loads.

* ``cache``: a step cache, ``NAME[:KEY=VALUE,...]`` (e.g. ``deepcache:interval=3``, ``fbc:threshold=0.08``).
  Every parameter has a default; the canonical spelling (:func:`canonical_cache`, all parameters, sorted)
  is what the record keeps, so a replay runs the very same cache. What each cache does and which families
  take it: :mod:`t2v.sampling.stepcache`.
* ``attention``: the attention kernel (``auto`` = PyTorch's scaled-dot-product attention, as now).
* ``weights``: how the denoiser's weights are stored (``auto`` = in the run's dtype; ``fp8`` = float8
  storage computed in bf16, diffusers' layerwise casting; ``int8`` = torchao int8 weight-only).
* ``compile``: ``torch.compile`` of the denoiser's repeated blocks (see :mod:`t2v.sampling.accel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2v.errors import InvalidRequest

# name -> {parameter: default}; a parameter's type is its default's (int or float).
CACHES: dict[str, dict[str, int | float]] = {
    # t2v's DeepCache-style reuse for UNet3D: the deep U-Net features are computed every `interval` steps and
    # reused in between, where only the blocks above skip branch `branch` run (0: the outermost).
    "deepcache": {"interval": 3, "branch": 0},
    # diffusers' hooks for the transformer (DiT) families:
    "fbc": {"threshold": 0.05},  # FirstBlockCache: skip the rest when the first block's residual barely changes
    "taylorseer": {"interval": 5, "warmup": 3, "order": 1},  # TaylorSeer: Taylor-extrapolated block outputs
    "magcache": {"threshold": 0.06, "max_skip": 3, "retention": 0.2},  # MagCache (needs `t2v cache calibrate`)
    "pab": {"spatial": 2, "temporal": 0, "cross": 0, "start": 100, "end": 800},  # PyramidAttentionBroadcast
    "fastercache": {"spatial": 2, "start": -1, "end": 681, "uncond_skip": 5},  # FasterCache
}
# --attention: auto (the model as loaded: PyTorch's SDPA, which picks its own back-end), PyTorch's SDPA pinned to
# one back-end (sdpa-flash, sdpa-efficient, sdpa-cudnn, sdpa-math), flex attention, and the flash-attn and
# SageAttention packages' kernels. What each needs (device, dtype, package) is t2v.sampling.kernels'.
ATTENTION = ("auto", "sdpa", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn", "sdpa-math", "flex", "flash", "sage")
MASKLESS_KERNELS = ("sdpa-flash", "flash", "sage")  # kernels that take no attention mask
WEIGHTS = ("auto", "fp8", "int8", "fp8-fast", "int8-fast")
_OFF = ("", "none", "off", "no")


@dataclass(frozen=True)
class CacheSpec:
    name: str
    params: dict[str, int | float]

    @property
    def canonical(self) -> str:
        return self.name + (":" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(self.params.items())) if self.params else "")


def _fmt(v: int | float) -> str:
    return str(v) if isinstance(v, int) else repr(float(v))


def cache_spec(text: str | None) -> CacheSpec | None:
    """Parse ``NAME[:KEY=VALUE,...]`` (None, "" or "none": no cache); InvalidRequest names the fault and the
    valid names or parameters."""
    if text is None or str(text).strip().lower() in _OFF:
        return None
    name, _, rest = str(text).strip().lower().partition(":")
    name = name.strip().replace("_", "-")
    if name not in CACHES:
        raise InvalidRequest(f"unknown step cache {name!r}; choose one of: {', '.join(CACHES)} "
                             f"(as NAME or NAME:KEY=VALUE,...)", field="cache")
    defaults = CACHES[name]
    params: dict[str, Any] = dict(defaults)
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if key not in defaults:
            valid = ", ".join(f"{k} (default {_fmt(v)})" for k, v in defaults.items()) or "none"
            raise InvalidRequest(f"{name} has no parameter {key!r}; its parameters: {valid}", field="cache")
        if not eq:
            raise InvalidRequest(f"give {name}'s {key} a value, e.g. {name}:{key}={_fmt(defaults[key])}",
                                 field="cache")
        kind = type(defaults[key])
        try:
            params[key] = kind(value.strip()) if kind is float else int(value.strip())
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise InvalidRequest(f"{name}'s {key} must be {what}, got {value.strip()!r}; e.g. "
                                 f"{name}:{key}={_fmt(defaults[key])}", field="cache") from None
    _check_ranges(name, params)
    return CacheSpec(name, params)


def _check_ranges(name: str, p: dict[str, Any]) -> None:
    def bad(key: str, rule: str, nearest) -> None:
        raise InvalidRequest(f"{name}'s {key} {rule}, got {_fmt(p[key])}; nearest valid: {_fmt(nearest)}",
                             field="cache")

    for key in ("interval", "max_skip", "order", "spatial", "uncond_skip"):
        if key in p and p[key] < (0 if key == "spatial" else 1):
            bad(key, "must be at least 1" if key != "spatial" else "must not be negative", 1 if key != "spatial" else 0)
    for key in ("temporal", "cross", "warmup", "branch"):
        if key in p and p[key] < 0:
            bad(key, "must not be negative", 0)
    for key in ("threshold", "retention"):
        if key in p and not 0 <= p[key] <= 1:
            bad(key, "must be between 0 and 1", min(1.0, max(0.0, p[key])))
    if "start" in p and "end" in p and p["start"] >= p["end"]:
        bad("end", f"must be above start ({p['start']})", p["start"] + 1)


def canonical_cache(text: str | None) -> str | None:
    spec = cache_spec(text)
    return spec.canonical if spec else None


def check_attention(name: str) -> str:
    name = str(name).strip().lower()
    if name not in ATTENTION:
        raise InvalidRequest(f"unknown kernel {name!r}; choose one of: {', '.join(ATTENTION)}", field="attention")
    return name


def check_weights(name: str, field: str = "weights") -> str:
    name = str(name).strip().lower()
    if name not in WEIGHTS:
        raise InvalidRequest(f"unknown storage {name!r}; choose one of: {', '.join(WEIGHTS)}", field=field)
    return name
