"""Find a model (registry id, hub id or local folder) and load its components for a device plan.

Hub ids go through ``huggingface_hub.snapshot_download`` into ``$T2V_HOME/models`` (the cache is
tried first, without network); folders are used in place. Either way the components are loaded
from a local folder in the diffusers layout, picking the ``fp16`` weight variant on accelerators
when the folder has it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2v.errors import ModelUnavailable, out_of_resources
from t2v.models.device import DevicePlan
from t2v.models.memory import tune_allocator
from t2v.models.registry import canonical_id, folder_info, lookup
from t2v.models.temporal import apply_temporal_positions
from t2v.settings import Settings, get_settings

logger = logging.getLogger(__name__)

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_WEIGHT_NAMES = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model",
                 "text_encoder_2": "model"}
_REQUIRED_WEIGHTS = ("unet", "vae", "text_encoder")  # text_encoder_2: SDXL only
_WEIGHT_EXTS = (".safetensors", ".bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: ``id`` as recorded, ``path`` a local folder in the diffusers layout."""

    id: str
    path: Path
    kind: str  # "hub" or "folder"
    revision: str | None = None  # hub commit hash
    family: str = "unknown"
    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    source: ModelSource
    plan: DevicePlan
    variant: str | None
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict[str, Any]
    content_hash: str
    load_s: float
    text_encoder_2: Any = None  # SDXL's second text encoder (CLIPTextModelWithProjection) and tokenizer
    tokenizer_2: Any = None


def is_offline(settings: Settings) -> bool:
    return settings.offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1


def as_path(model: str) -> Path:
    """``model`` as a filesystem path, ``~`` expanded (left as is for an unknown ``~user``)."""
    try:
        return Path(model).expanduser()
    except RuntimeError:  # "Could not determine home directory."
        return Path(model)


def model_defaults(model: str) -> tuple[str, dict[str, Any]]:
    """Family and defaults of a model without loading or downloading anything."""
    path = as_path(model)
    if os.path.isdir(path):  # False, not OSError, for names no file can have (too long, NUL)
        return folder_info(path)
    spec = lookup(model)
    if spec:
        return spec.family, dict(spec.defaults)
    return folder_info(Path("/nonexistent"))


def check_folder(path: Path) -> dict[str, Any]:
    """Check that ``path`` is a diffusers text-to-video folder; return its model_index.json."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelUnavailable(f"{path} is not a diffusers model folder: it has no model_index.json")
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"{index_file} is not valid JSON: {e}") from None
    missing = [c for c in COMPONENTS if c not in index or not (path / c).is_dir()]
    if missing:
        raise ModelUnavailable(f"{path} is not a complete text-to-video model: missing {', '.join(missing)}")
    return index


def _fix_hint(model: str) -> str:
    return (
        f"pass a local model folder with --model PATH, or run `t2v models pull {model}` on a machine with "
        "internet access and copy $T2V_HOME/models here; unset HF_HUB_OFFLINE/T2V_OFFLINE if this machine is online"
    )


def resolve_source(model: str, settings: Settings, *, revision: str | None = None, want_fp16: bool = False) -> ModelSource:
    """Turn a model name into a local folder, downloading from the hub only when allowed."""
    path = as_path(model)
    if os.path.exists(path) or looks_like_path(model):
        if not os.path.exists(path):
            raise ModelUnavailable(f"model folder {model} does not exist")
        if not path.is_dir():
            raise ModelUnavailable(f"{model} is a file, not a model folder")
        check_folder(path)
        family, defaults = folder_info(path)
        return ModelSource(id=str(path.resolve()), path=path.resolve(), kind="folder", family=family, defaults=defaults)

    model_id = canonical_id(model)
    spec = lookup(model_id)
    if spec and spec.bundled_path is not None:
        if not spec.bundled_path.is_dir():
            raise ModelUnavailable(f"{model_id} should ship with t2v at {spec.bundled_path}, but that folder is missing; reinstall t2v")
        check_folder(spec.bundled_path)
        return ModelSource(id=model_id, path=spec.bundled_path, kind="bundled", family=spec.family, defaults=dict(spec.defaults))
    if not HUB_ID.match(model_id):
        raise ModelUnavailable(
            f"unknown model {model!r}: not a registered model (see `t2v models list`), an existing folder, or a hub id like org/name"
        )
    revision = revision or (spec.revision if spec else "main")
    folder = _snapshot(model_id, revision, settings, want_fp16=want_fp16)
    check_folder(folder)
    family, defaults = folder_info(folder)
    if spec:
        family, defaults = spec.family, dict(spec.defaults)
    return ModelSource(id=model_id, path=folder, kind="hub", revision=folder.name, family=family, defaults=defaults)


def check_available(model: str, settings: Settings, *, restricted: bool = False) -> None:
    """Raise ModelUnavailable now if ``model`` could not be loaded later (a folder, or a hub id when offline).

    ``restricted`` (requests from the API and the web UI): only the server's default models, registered
    models, models in the cache and folders under ``settings.model_roots`` pass; any other name gets
    :data:`t2v.models.allowlist.NOT_ALLOWED`, the same text whatever is or is not at that path. A hub model not in the cache passes
    only with ``settings.allow_downloads`` (and not offline): the server never downloads one otherwise.
    """
    if restricted:
        from t2v.models.allowlist import check_allowed

        check_allowed(model, settings)
    path = as_path(model)
    if os.path.exists(path) or looks_like_path(model) or not HUB_ID.match(canonical_id(model)) or is_offline(settings):
        resolve_source(model, settings)


def _snapshot(model_id: str, revision: str, settings: Settings, *, want_fp16: bool) -> Path:
    from huggingface_hub import snapshot_download

    cache = str(settings.cache_dir)
    try:
        return Path(snapshot_download(model_id, revision=revision, cache_dir=cache, local_files_only=True))
    except Exception as e:  # not cached (LocalEntryNotFoundError and friends)
        if is_offline(settings):
            raise ModelUnavailable(
                f"model {model_id} is not in the cache ({cache}) and offline mode is on; {_fix_hint(model_id)}"
            ) from None
        logger.debug("cache miss for %s: %s", model_id, e)
    try:
        return Path(
            snapshot_download(model_id, revision=revision, cache_dir=cache, allow_patterns=_hub_patterns(model_id, revision, want_fp16))
        )
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelUnavailable(
            f"model {model_id} is not cached and could not be downloaded ({first[:200]}); {_fix_hint(model_id)}"
        ) from None


def _hub_patterns(model_id: str, revision: str, want_fp16: bool) -> list[str]:
    """Only the files t2v loads: configs, tokenizer, and one weight file per component (fp16 variant if wanted)."""
    from huggingface_hub import HfApi

    files = set(HfApi().list_repo_files(model_id, revision=revision))
    patterns = ["model_index.json", "*/*.json", "tokenizer/*", "tokenizer_2/*", "t2v.json"]
    for comp, stem in _WEIGHT_NAMES.items():
        if comp not in _REQUIRED_WEIGHTS and not any(f.startswith(comp + "/") for f in files):
            continue
        candidates = [f"{comp}/{stem}.fp16{ext}" for ext in _WEIGHT_EXTS] if want_fp16 else []
        candidates += [f"{comp}/{stem}{ext}" for ext in _WEIGHT_EXTS]
        chosen = next((c for c in candidates if c in files), None)
        if chosen is None:  # sharded weights: take the index and its shards
            chosen = f"{comp}/{stem}*"
        patterns.append(chosen)
    return patterns


def pick_variant(path: Path, plan: DevicePlan) -> str | None:
    """``fp16`` when running half precision on an accelerator and every weight component has such files."""
    if not (plan.is_accelerator and plan.dtype in ("fp16", "bf16")):
        return None
    for comp, stem in _WEIGHT_NAMES.items():
        if not (path / comp).is_dir() and comp not in _REQUIRED_WEIGHTS:
            continue
        if not any((path / comp / f"{stem}.fp16{ext}").is_file() for ext in _WEIGHT_EXTS) and not any(
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
        and (p.suffix in (".json", ".txt") or (p.suffix in _WEIGHT_EXTS and (".fp16" in p.name) == (variant == "fp16")))
    )
    h = hashlib.sha256()
    for p, digest in zip(files, file_digests(files, cache_file)):
        h.update(str(p.relative_to(path)).encode() + b"\0")
        h.update(digest.encode())
    return h.hexdigest()


def _load_components(path: Path, plan: DevicePlan, variant: str | None, target: str | None = None,
                     family: str = "modelscope") -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    dtype = plan.torch_dtype
    unet_class = UNet2DConditionModel if family in ("sd", "sdxl") else UNet3DConditionModel
    loaders = {
        "tokenizer": lambda: CLIPTokenizer.from_pretrained(path, subfolder="tokenizer"),
        "text_encoder": lambda: CLIPTextModel.from_pretrained(path, subfolder="text_encoder", dtype=dtype, variant=variant),
        "unet": lambda: apply_temporal_positions(unet_class.from_pretrained(path, subfolder="unet", dtype=dtype, variant=variant)),
        "vae": lambda: AutoencoderKL.from_pretrained(path, subfolder="vae", dtype=dtype, variant=variant),
    }
    if family == "sdxl":
        from transformers import CLIPTextModelWithProjection

        loaders["tokenizer_2"] = lambda: CLIPTokenizer.from_pretrained(path, subfolder="tokenizer_2")
        loaders["text_encoder_2"] = lambda: CLIPTextModelWithProjection.from_pretrained(
            path, subfolder="text_encoder_2", dtype=dtype, variant=variant)
    out: dict[str, Any] = {}
    for name, load in loaders.items():
        try:
            obj = load()
        except Exception as e:
            if out_of_resources(e):  # missing libraries and memory: the same folder may load on the next try
                raise  # as is: the service retries the job (t2v.service.worker)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            # An OSError (a read error, a file being copied) is kept as the cause: the service retries those too.
            raise ModelUnavailable(f"could not load {name} from {path / name}: {first[:300]}") from (
                e if isinstance(e, OSError) else None)
        if not name.startswith("tokenizer"):
            obj = obj.to(target or plan.device).eval().requires_grad_(False)
        out[name] = obj
    try:
        out["scheduler_config"] = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelUnavailable(f"could not read the scheduler config in {path / 'scheduler'}: {e}") from None
    return out


_CACHE: OrderedDict[tuple, LoadedModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()
# Loaded models kept between calls: at most this many bytes of weights (the newest one always stays).
CACHE_BUDGET_BYTES = int(float(os.environ.get("T2V_MODEL_CACHE_GB", "0")) * 2**30)


def weight_bytes(model: LoadedModel) -> int:
    return sum(p.numel() * p.element_size() for m in (model.unet, model.vae, model.text_encoder) for p in m.parameters())


def load_model(source: ModelSource, plan: DevicePlan, *, offload: bool = False, lora: str | None = None,
               lora_scale: float = 1.0) -> LoadedModel:
    """Load (or reuse) the model's components for ``plan.device`` in ``plan.dtype``.

    With ``offload`` (an accelerator and the ``low`` memory plan) the weights stay in CPU memory and the
    engine moves each component to the device only while it runs. With ``lora`` (an adapter folder) the
    UNet is a copy of the base one with the adapter applied at ``lora_scale``; the base stays cached as is.
    """
    variant = pick_variant(source.path, plan)
    offload = offload and plan.is_accelerator
    if lora:
        return _with_lora(load_model(source, plan, offload=offload), lora, lora_scale, offload)
    key = (str(source.path), plan.device, plan.dtype, variant, offload)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            cached = _CACHE[key]
            return LoadedModel(**{**cached.__dict__, "source": source, "plan": plan, "load_s": 0.0})
        t0 = time.perf_counter()
        tune_allocator(get_settings().mmap_threshold_kb)  # before this process's first large tensors (once)
        parts = _load_components(source.path, plan, variant, "cpu" if offload else None, family=source.family)
        digest = content_hash(source.path, variant)
        loaded = LoadedModel(source=source, plan=plan, variant=variant, content_hash=digest, load_s=time.perf_counter() - t0, **parts)
        _CACHE[key] = loaded
        _evict()
        return loaded


def _with_lora(base: LoadedModel, lora: str, scale: float, offload: bool) -> LoadedModel:
    import copy

    from t2v.models.lora import adapter_hash, apply_lora, check_lora, decoder_adapter

    folder = check_lora(lora)
    digest = adapter_hash(folder)
    key = (str(base.source.path), base.plan.device, base.plan.dtype, base.variant, offload, str(folder), digest, float(scale))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return LoadedModel(**{**_CACHE[key].__dict__, "source": base.source, "plan": base.plan, "load_s": 0.0})
    t0 = time.perf_counter()
    unet = copy.deepcopy(base.unet)
    apply_lora(unet, folder, scale)
    vae, decoder = base.vae, decoder_adapter(folder)
    if decoder:  # the VAE too gets a copy only when the adapter has a decoder part
        vae = copy.deepcopy(base.vae)
        apply_lora(vae, decoder, scale)
    loaded = LoadedModel(**{**base.__dict__, "unet": unet, "vae": vae, "content_hash": f"{base.content_hash}+lora:{digest}",
                            "load_s": base.load_s + time.perf_counter() - t0})
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        _evict()
    return loaded


def _evict() -> None:
    """Drop the least recently used models while the cache is over its budget (never the newest)."""
    while len(_CACHE) > 1 and sum(weight_bytes(m) for m in _CACHE.values()) > CACHE_BUDGET_BYTES:
        _CACHE.popitem(last=False)


def loaded_models() -> list[dict[str, Any]]:
    """What is in memory now (for /readyz)."""
    with _CACHE_LOCK:
        return [{"model": k[0], "device": k[1], "dtype": k[2], "weights_mb": round(weight_bytes(m) / 2**20, 1)}
                for k, m in _CACHE.items()]


def forget(model: LoadedModel) -> None:
    """Drop ``model`` from the cache (its memory is freed once the caller lets go of it too)."""
    with _CACHE_LOCK:
        for key in [k for k, m in _CACHE.items() if m.unet is model.unet]:
            del _CACHE[key]


def clear_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


def pull(model: str, settings: Settings, *, revision: str | None = None, fp16: bool = True) -> Path:
    """Download a hub model into the t2v cache (for `t2v models pull`)."""
    model_id = canonical_id(model)
    bundled = lookup(model_id)
    if bundled and bundled.bundled_path is not None:
        return resolve_source(model_id, settings).path  # ships with t2v: nothing to download
    if not HUB_ID.match(model_id):
        raise ModelUnavailable(f"{model!r} is not a hub id like org/name")
    spec = lookup(model_id)
    return _snapshot(model_id, revision or (spec.revision if spec else "main"), settings.model_copy(update={"offline": False}), want_fp16=fp16)
