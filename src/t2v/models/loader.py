"""Load a model's components for a device plan, from the local folder :mod:`t2v.models.source` resolved.

The components are loaded from a folder in the diffusers layout, picking the ``fp16`` weight variant on
accelerators when the folder has it; the weights' content hash goes in the record. Loaded models are kept in
a per-process cache (``T2V_MODEL_CACHE_GB``) so a warm worker reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from t2v.errors import ModelUnavailable
from t2v.models.device import DevicePlan
from t2v.planner.memory import tune_allocator
from t2v.models.source import WEIGHT_EXTS, ModelSource
from t2v.models.catalog import CATALOG, read_index
from t2v.settings import get_settings

logger = logging.getLogger(__name__)



@dataclass
class LoadedModel:
    """A model's loaded components by name (``components["unet"]``, ``["transformer"]``, ...; also readable as
    attributes, ``model.vae``), with where they came from and how they were loaded."""

    source: ModelSource
    plan: DevicePlan
    variant: str | None
    components: dict[str, Any]
    scheduler_config: dict[str, Any]
    content_hash: str
    load_s: float

    def __getattr__(self, name: str) -> Any:
        components = self.__dict__.get("components") or {}
        if name in components:
            return components[name]
        if name in ("text_encoder_2", "tokenizer_2", "image_encoder", "transformer_2"):
            return None  # optional components a family may lack
        raise AttributeError(name)

    def copy(self, **changes: Any) -> LoadedModel:
        """A copy sharing the components (their dict is new: a run may drop one, e.g. the text encoder), except
        fast tokenizers, which are copied: a call with padding or truncation sets them on the shared Rust
        tokenizer, so two runs in two threads would pad each other's prompts."""
        import copy

        fields = {**self.__dict__, **changes}
        fields["components"] = {k: copy.deepcopy(v) if hasattr(v, "backend_tokenizer") else v
                                for k, v in fields["components"].items()}
        return LoadedModel(**fields)

    @property
    def family(self):
        return CATALOG.family(self.source.family)


def _module_stems(path: Path) -> dict[str, str]:
    """Component folder -> weight file stem, for the components with weights the folder's family loads."""
    index = read_index(path)
    return {c.name: c.weight_stem for c in CATALOG.family_of_folder(path).component_specs(index)
            if c.module and (path / c.name).is_dir()}


def pick_variant(path: Path, plan: DevicePlan) -> str | None:
    """``fp16`` when running half precision on an accelerator and every weight component has such files."""
    if not (plan.is_accelerator and plan.dtype in ("fp16", "bf16")):
        return None
    for comp, stem in _module_stems(path).items():
        if not any((path / comp / f"{stem}.fp16{ext}").is_file() for ext in WEIGHT_EXTS) and not any(
            (path / comp).glob(f"{stem}.fp16*.index.json")
        ):
            return None
    return "fp16"


def content_hash(path: Path, variant: str | None, *, cache_file: Path | None = None) -> str:
    """sha256 over the configs and the weight files that get loaded.

    Each file's digest is cached by (absolute path, size, mtime_ns), in this process and on disk
    (``cache_file``, default ``$T2V_HOME/cache/content-hashes.json``; see :mod:`t2v.models.hashcache`),
    so a new process does not read gigabytes of weights again just to name them.
    """
    from t2v.models.hashcache import file_digests

    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith(".")
        and (p.suffix in (".json", ".txt") or (p.suffix in WEIGHT_EXTS and (".fp16" in p.name) == (variant == "fp16")))
    )
    h = hashlib.sha256()
    for p, digest in zip(files, file_digests(files, cache_file)):
        h.update(str(p.relative_to(path)).encode() + b"\0")
        h.update(digest.encode())
    return h.hexdigest()


def _load_components(path: Path, plan: DevicePlan, variant: str | None, target: str | None = None,
                     family: str = "modelscope", weights: str = "auto") -> dict[str, Any]:
    """The components by name (the family's generic loader; the denoisers stored as ``weights`` says) and
    ``scheduler_config``."""
    from t2v.models.precision import apply_weights

    import torch

    fam = CATALOG.family(family)
    # Some models' constructors draw from torch's global RNG (LTX's transformer and VAE) before their weights
    # are read: loading leaves the caller's global RNG as it was.
    with torch.random.fork_rng(devices=[]):
        parts = dict(fam.load(path, plan, variant, target))
    out: dict[str, Any] = apply_weights(fam, parts, weights, plan.torch_dtype)
    try:
        out["scheduler_config"] = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"could not read the scheduler config in {path / 'scheduler'}: {e}") from None
    return out


_CACHE: OrderedDict[tuple, LoadedModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()
# Loaded models kept between calls: at most this many bytes of weights (the newest one always stays).
CACHE_BUDGET_BYTES: int | None = None  # None: T2V_MODEL_CACHE_GB (Settings.model_cache_gb), read when needed


def cache_budget() -> int:
    """Bytes of weights the process keeps loaded between jobs (beyond the most recently used model)."""
    if CACHE_BUDGET_BYTES is not None:
        return CACHE_BUDGET_BYTES
    return int(get_settings().model_cache_gb * 2**30)


def weight_bytes(model: LoadedModel) -> int:
    return sum(p.numel() * p.element_size() for m in model.components.values() if hasattr(m, "parameters")
               for p in m.parameters())


def load_model(source: ModelSource, plan: DevicePlan, *, offload: bool = False, lora: str | None = None,
               lora_scale: float = 1.0, weights: str = "auto") -> LoadedModel:
    """Load (or reuse) the model's components for ``plan.device`` in ``plan.dtype``.

    With ``offload`` (an accelerator and the ``low`` memory plan) the weights stay in CPU memory and the
    engine moves each component to the device only while it runs. With ``lora`` (an adapter folder) the
    UNet is a copy of the base one with the adapter applied at ``lora_scale``; the base stays cached as is.
    ``weights`` other than ``auto`` (:mod:`t2v.models.precision`: ``fp8``, ``int8``) is a model of its own,
    loaded afresh and cached beside the ``auto`` one, which it never changes; its ``content_hash`` says so.
    """
    from t2v.models.precision import check_weights

    check_weights(weights, plan.device, plan.dtype, lora=lora)
    variant = pick_variant(source.path, plan)
    offload = offload and plan.is_accelerator
    if lora:
        return _with_lora(load_model(source, plan, offload=offload), lora, lora_scale, offload)
    key = (str(source.path), plan.device, plan.dtype, variant, offload, weights)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key].copy(source=source, plan=plan, load_s=0.0)
        t0 = time.perf_counter()
        tune_allocator(get_settings().mmap_threshold_kb)  # before this process's first large tensors (once)
        parts = _load_components(source.path, plan, variant, "cpu" if offload else None, family=source.family,
                                 weights=weights)
        digest = content_hash(source.path, variant) + ("" if weights == "auto" else f"+weights:{weights}")
        scheduler_config = parts.pop("scheduler_config")
        loaded = LoadedModel(source=source, plan=plan, variant=variant, components=parts, scheduler_config=scheduler_config,
                             content_hash=digest, load_s=time.perf_counter() - t0)
        _CACHE[key] = loaded
        _evict()
        return loaded


def _with_lora(base: LoadedModel, lora: str, scale: float, offload: bool) -> LoadedModel:
    family = base.family
    adapter = family.check_lora(lora)
    digest = family.lora_hash(adapter)
    key = (str(base.source.path), base.plan.device, base.plan.dtype, base.variant, offload, str(adapter), digest, float(scale))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key].copy(source=base.source, plan=base.plan, load_s=0.0)
    t0 = time.perf_counter()
    components = family.apply_lora(base.components, adapter, scale)
    loaded = base.copy(components=components, content_hash=f"{base.content_hash}+lora:{digest}",
                       load_s=base.load_s + time.perf_counter() - t0)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        _evict()
    return loaded


def _evict() -> None:
    """Drop the least recently used models while the cache is over its budget (never the newest)."""
    budget = cache_budget()
    while len(_CACHE) > 1 and sum(weight_bytes(m) for m in _CACHE.values()) > budget:
        _CACHE.popitem(last=False)


def loaded_models() -> list[dict[str, Any]]:
    """What is in memory now (for /readyz)."""
    with _CACHE_LOCK:
        return [{"model": k[0], "device": k[1], "dtype": k[2], "weights_mb": round(weight_bytes(m) / 2**20, 1)}
                for k, m in _CACHE.items()]


def forget(model: LoadedModel) -> None:
    """Drop ``model`` from the cache (its memory is freed once the caller lets go of it too)."""
    with _CACHE_LOCK:
        for key in [k for k, m in _CACHE.items() if m.content_hash == model.content_hash and m.source.path == model.source.path]:
            del _CACHE[key]


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()
