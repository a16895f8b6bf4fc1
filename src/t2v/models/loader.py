"""Load a model's components for a device plan, from the local folder :mod:`t2v.models.source` resolved.

The components are loaded from a folder in the diffusers layout, picking the ``fp16`` weight variant on
accelerators when the folder has it; the weights' content hash goes in the record. Loaded models are kept in
the runtime's model cache (:class:`ModelCache`, ``T2V_MODEL_CACHE_GB``) so a warm worker reuses them.
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
from t2v.models.adapters import AdapterHost, AdapterPart
from t2v.models.deferred import Components
from t2v.models.device import DevicePlan, tune_allocator
from t2v.models.precision import apply_weights, check_weights
from t2v.models.download import WEIGHT_EXTS
from t2v.models.source import ModelSource
from t2v.models.catalog import read_index
from t2v.runtime import Runtime, current, memoized
from t2v.sampling.offload import group_offload
from t2v.models.hashcache import file_digests

logger = logging.getLogger(__name__)



@dataclass
class LoadedModel:
    """A model's loaded components by name (``components["unet"]``, ``["transformer"]``, ...; also readable as
    attributes, ``model.vae``), with where they came from, how they were loaded and the family that loaded them."""

    source: ModelSource
    plan: DevicePlan
    variant: str | None
    components: dict[str, Any]
    scheduler_config: dict[str, Any]
    content_hash: str
    load_s: float
    adapters: str = ""  # the LoRAs applied and their strengths ("" for the base model): the prompt cache keys on it
    adapter_hashes: tuple[str, ...] = ()  # each LoRA's content hash, in order (the record lists them)
    adapter_parts: tuple[AdapterPart, ...] = ()  # what each LoRA puts on which component, at which strength
    host: AdapterHost | None = None  # the adapters loaded into the base model's modules (shared by its copies)
    base_hash: str = ""  # the base model's content hash (the cache's key; content_hash adds the adapters)
    family: Any = None  # the t2v.families.Family that loaded it (given by the caller, never looked up here)

    def __post_init__(self) -> None:
        if not isinstance(self.components, Components):
            self.components = Components(self.components)
        self.base_hash = self.base_hash or self.content_hash

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
        fields["components"] = Components({k: copy.deepcopy(v) if hasattr(v, "backend_tokenizer") else v
                                           for k, v in dict.items(fields["components"])})
        return LoadedModel(**fields)

    def using(self):
        """A context in which the model's modules run with this model's adapters (and no others) active:
        :meth:`AdapterHost.use`; the base model's runs see none."""
        from contextlib import nullcontext

        if self.host is None:
            return nullcontext()
        return self.host.use(self.components, self.adapter_parts, self.family.load_adapter)


def _module_stems(path: Path, family) -> dict[str, str]:
    """Component folder -> weight file stem, for the components with weights ``family`` loads from the folder."""
    index = read_index(path)
    return {c.name: c.weight_stem for c in family.component_specs(index)
            if c.module and (path / c.name).is_dir()}


def pick_variant(path: Path, plan: DevicePlan, family) -> str | None:
    """``fp16`` when running half precision on an accelerator and every weight component has such files, or
    when only those are here (what a default ``t2v models pull`` fetches: loaded, then cast to the plan's
    dtype); else None (the full-precision files)."""
    stems = _module_stems(path, family)
    fp16 = all(has_weights(path / comp, stem, fp16=True) for comp, stem in stems.items())
    if plan.is_accelerator and plan.dtype in ("fp16", "bf16") and fp16:
        return "fp16"
    full = all(has_weights(path / comp, stem, fp16=False) for comp, stem in stems.items())
    return "fp16" if fp16 and not full else None


def has_weights(folder: Path, stem: str, *, fp16: bool) -> bool:
    """Whether ``folder`` has ``stem``'s weights (one file or a sharded index), the fp16 variant's or the others."""
    tag = ".fp16" if fp16 else ""
    if any((folder / f"{stem}{tag}{ext}").is_file() for ext in WEIGHT_EXTS):
        return True
    return any((".fp16" in p.name) == fp16 for p in folder.glob(f"{stem}*.index.json"))


def content_hash(path: Path, variant: str | None, *, cache_file: Path | None = None) -> str:
    """sha256 over the configs and the weight files that get loaded.

    Each file's digest is cached by (absolute path, size, mtime_ns), in this process and on disk
    (``cache_file``, default ``$T2V_HOME/cache/content-hashes.json``; see :mod:`t2v.models.hashcache`),
    so a new process does not read gigabytes of weights again just to name them.
    """
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


def _load_components(path: Path, plan: DevicePlan, variant: str | None, family, target: str | None = None,
                     weights: str = "auto", files: dict[str, Path] | None = None,
                     text_weights: str = "auto") -> dict[str, Any]:
    """The components by name (``family``'s generic loader, those in ``files`` from their single files; the
    denoisers stored as ``weights`` says) and ``scheduler_config``."""
    import torch

    # Some models' constructors draw from torch's global RNG (LTX's transformer and VAE) before their weights
    # are read: loading leaves the caller's global RNG as it was.
    with torch.random.fork_rng(devices=[]):
        parts = dict(family.load(path, plan, variant, target, files=files))
    out: dict[str, Any] = apply_weights(family, parts, weights, plan.torch_dtype, text_weights)
    if target == "cpu" and plan.is_accelerator:  # the low plan: these components' blocks stream to the device
        group_offload(out, plan.device, family.streamed)
    try:
        out["scheduler_config"] = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"could not read the scheduler config in {path / 'scheduler'}: {e}") from None
    return out


class ModelCache:
    """Loaded models kept between runs by a :class:`~t2v.runtime.Runtime`: at most ``budget_bytes`` of weights
    (the newest one always stays); ``budget_bytes`` None reads ``T2V_MODEL_CACHE_GB`` from the runtime's
    settings when it is needed."""

    def __init__(self, runtime: Runtime | None = None, budget_bytes: int | None = None):
        self.runtime = runtime
        self.budget_bytes = budget_bytes
        self.entries: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self.lock = threading.Lock()

    def budget(self) -> int:
        """Bytes of weights kept loaded between jobs (beyond the most recently used model)."""
        if self.budget_bytes is not None:
            return self.budget_bytes
        return int((self.runtime or current()).settings.model_cache_gb * 2**30)

    def get(self, key: tuple) -> LoadedModel | None:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
            return found

    def put(self, key: tuple, model: LoadedModel) -> None:
        """Keep ``model``, then drop the least recently used ones while over the budget (never the newest)."""
        with self.lock:
            self.entries[key] = model
        self.trim()

    def trim(self) -> None:
        """Drop the least recently used models while over the budget (never the newest)."""
        budget = self.budget()
        with self.lock:
            while len(self.entries) > 1 and sum(weight_bytes(m) for m in self.entries.values()) > budget:
                self.entries.popitem(last=False)

    def loaded(self) -> list[dict[str, Any]]:
        """What is in memory now (for /readyz)."""
        with self.lock:
            return [{"model": k[0], "device": k[1], "dtype": k[2], "weights_mb": round(weight_bytes(m) / 2**20, 1)}
                    for k, m in self.entries.items()]

    def forget(self, model: LoadedModel) -> None:
        """Drop ``model`` (its memory is freed once the caller lets go of it too)."""
        with self.lock:
            for key in [k for k, m in self.entries.items()
                        if m.base_hash == model.base_hash and m.source.path == model.source.path]:
                del self.entries[key]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)


def model_cache(runtime: Runtime | None = None) -> ModelCache:
    """The loaded-model cache of ``runtime`` (the process's by default)."""
    return (runtime or current()).cache("models", ModelCache)


def weight_bytes(model: LoadedModel) -> int:
    return sum(p.numel() * p.element_size() for m in model.components.modules() if hasattr(m, "parameters")
               for p in m.parameters())


_LOAD_LOCK = threading.Lock()  # one load at a time: two threads asking for the same model load it once


def load_model(source: ModelSource, plan: DevicePlan, *, family, offload: bool = False, loras: tuple = (),
               weights: str = "auto", text_weights: str = "auto", runtime: Runtime | None = None) -> LoadedModel:
    """Load (or reuse, from ``runtime``'s model cache) the model's components for ``plan.device`` in ``plan.dtype``
    with ``family`` (the :class:`~t2v.families.Family` of ``source``, which the caller found).

    With ``offload`` (an accelerator and the ``low`` memory plan) the weights stay in CPU memory and the
    engine moves each component to the device only while it runs. With ``loras`` (checked
    :class:`~t2v.requests.LoraSpec` entries, their paths resolved and strengths filled) the model is the cached
    base with those adapters to switch on while it runs (:meth:`LoadedModel.using`): nothing is copied or fused.
    ``weights`` other than ``auto`` (:mod:`t2v.models.precision`: ``fp8``, ``int8``) is a model of its own,
    loaded afresh and cached beside the ``auto`` one, which it never changes; its ``content_hash`` says so; and
    so is ``text_weights`` (the text encoders' storage).
    """
    check_weights(weights, plan.device, plan.dtype, lora=bool(loras))
    check_weights(text_weights, plan.device, plan.dtype, field="text_encoder_weights")
    runtime = runtime or current()
    cache = model_cache(runtime)
    variant = pick_variant(source.path, plan, family)
    offload = offload and plan.is_accelerator
    if loras:
        return with_loras(load_model(source, plan, family=family, offload=offload, text_weights=text_weights,
                                     runtime=runtime), tuple(loras))
    key = (str(source.path), plan.device, plan.dtype, variant, offload, weights, source.files, text_weights)
    with _LOAD_LOCK:
        found = cache.get(key)
        if found is not None:
            return found.copy(source=source, plan=plan, load_s=0.0)
        t0 = time.perf_counter()
        tune_allocator(runtime.settings.mmap_threshold_kb)  # before this process's first large tensors (once)
        files = {name: Path(file) for name, file in source.files}
        parts = _load_components(source.path, plan, variant, family, "cpu" if offload else None, weights=weights,
                                 files=files, text_weights=text_weights)
        digest = (content_hash(source.path, variant) + ("" if weights == "auto" else f"+weights:{weights}")
                  + ("" if text_weights == "auto" else f"+text_encoder_weights:{text_weights}")
                  + "".join(f"+{name}:{d[:16]}" for name, d in zip(files, file_digests(list(files.values())))))
        scheduler_config = parts.pop("scheduler_config")
        loaded = LoadedModel(source=source, plan=plan, variant=variant, components=parts, scheduler_config=scheduler_config,
                             content_hash=digest, load_s=time.perf_counter() - t0,
                             host=AdapterHost(runtime.settings.lora_idle_s), family=family)
        cache.put(key, loaded)
        return loaded


def adapter_digests(family, loras: tuple) -> list[str]:
    """Each adapter's content hash (16 hex digits), in order; read once per process while its files keep their
    size and time (a server's jobs that use the same adapter read none of its bytes again)."""
    return [_adapter_digest(family, str(spec.path), _stamp(Path(spec.path))) for spec in loras]


def _stamp(path: Path) -> tuple:
    """(relative name, size, mtime_ns) of each file of an adapter (a file, or a folder's files)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = [(f, f.stat()) for f in files]
    return tuple((str(f.relative_to(path)) if f != path else "", st.st_size, st.st_mtime_ns) for f, st in stats)


@memoized("adapter-digests", 64)
def _adapter_digest(family, path: str, stamp: tuple) -> str:
    return family.lora_hash(Path(path))


def with_loras(base: LoadedModel, loras: tuple) -> LoadedModel:
    """``base`` with ``loras`` to switch on while it runs: what each one puts on which component (the family's
    :meth:`~t2v.families.base.Family.adapter_parts`), its content hash and the stack's name."""
    family = base.family
    digests = adapter_digests(family, loras)
    stack = "+".join(f"{d}@{spec.scale!r}" + ("" if spec.scale_low is None else f"/{spec.scale_low!r}")
                     + ("" if spec.experts == "both" else f"@{spec.experts}") for d, spec in zip(digests, loras))
    present = tuple(n for n in dict.keys(base.components) if dict.get(base.components, n) is not None)
    parts = tuple(part for i, spec in enumerate(loras) for part in family.adapter_parts(present, spec, i))
    # the hash names the adapters' files (their strengths are in the request), as it did for one adapter
    return base.copy(content_hash=f"{base.base_hash}+lora:{'+'.join(digests)}", adapters=stack,
                     adapter_hashes=tuple(digests), adapter_parts=parts)


def loaded_models(runtime: Runtime | None = None) -> list[dict[str, Any]]:
    """What is in the model cache of ``runtime`` (the process's by default) now."""
    return model_cache(runtime).loaded()


def forget(model: LoadedModel, runtime: Runtime | None = None) -> None:
    """Drop ``model`` from the model cache (its memory is freed once the caller lets go of it too)."""
    model_cache(runtime).forget(model)


def clear_cache(runtime: Runtime | None = None) -> None:
    model_cache(runtime).clear()
