"""How weights are stored: loading straight into the run's dtype, and the ``--weights`` storage variants.

**Loading in a lower dtype.** diffusers and transformers read a safetensors file through one memory map and
cast each tensor to the asked dtype: every page of the fp32 file is touched and stays mapped (counted in
RSS) until the whole load ends, so a bf16 load of an fp32 checkpoint peaks at fp32 + bf16 = 3x the bf16
weights, and the page faults make it slower than the fp32 load it replaces (see docs/speed.md,
"Precision"). :func:`load_converted` instead lets ``from_pretrained`` build the model in the checkpoint's
own dtype (mapped, untouched: no weight is read) and then converts each tensor into its final one a few
MiB at a time, dropping each chunk's pages from the process as soon as it is copied
(:func:`read_converted`). The load peaks at about the converted weights.

**Storage variants** (:func:`check_weights`, :func:`apply_weights`): ``fp8`` stores the denoiser(s) in
float8_e4m3fn and computes in the run's dtype (diffusers' layerwise casting); ``int8`` is torchao's int8
weight-only quantisation of the denoiser(s). ``fp8-fast`` and ``int8-fast`` compute the denoiser's block
layers in 8 bits (:mod:`t2v.models.fastcompute`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
from pathlib import Path
from typing import Any, Callable, Iterator

from t2v.errors import InvalidRequest
from t2v.models.deferred import Deferred
from t2v.models.fastcompute import FAST
from t2v.models.fastcompute import check as fast_check
from t2v.models.fastcompute import needs_torchao, quantise
from t2v.models.converted import converted_tensors  # kept on disk once converted (a cache of its own)
from t2v.models.tensorfiles import SAFETENSORS_DTYPES, read_converted, read_header, stored_chunks  # noqa: F401

logger = logging.getLogger(__name__)

def checkpoint_files(folder: Path, stem: str, variant: str | None) -> list[Path]:
    """The safetensors files ``from_pretrained`` reads for a component folder (one file or the shards), or
    [] when they are not plain safetensors files named as diffusers and transformers name them."""
    def ours(name: str, dots: int) -> bool:
        return f".{variant}." in name if variant else name.count(".") == dots

    files = [p for p in sorted(folder.glob(f"{stem}*.safetensors")) if p.is_file() and ours(p.name, 1)]
    indexes = [p for p in folder.glob(f"{stem}.safetensors.index*.json") if ours(p.name, 3)]
    if len(indexes) == 1:  # sharded: the files its weight map names
        try:
            shards = set(json.loads(indexes[0].read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError, AttributeError):
            return []
        files = [folder / name for name in sorted(shards)]
        return files if all(p.is_file() for p in files) else []
    return files if len(files) == 1 and not indexes else []


# -- loading ---------------------------------------------------------------------------------------------


def load_module(cls, path: Path, subfolder: str, stem: str, dtype, variant: str | None):
    """``cls.from_pretrained(path, subfolder=subfolder, dtype=dtype, variant=variant)``, the same model, but a
    checkpoint stored in another float dtype is converted tensor by tensor (:func:`load_converted`)."""
    model = load_converted(cls, path, subfolder, stem, dtype, variant)
    if model is None:
        model = cls.from_pretrained(path, subfolder=subfolder, dtype=dtype, variant=variant)
    return model


def load_converted(cls, path: Path, subfolder: str, stem: str, dtype, variant: str | None):
    """``cls.from_pretrained(path, subfolder=..., dtype=dtype, variant=variant)`` without holding the stored
    weights beside the converted ones; None when this load needs no conversion or the checkpoint is not
    one this can stream (then the caller loads as usual)."""
    import torch

    files = checkpoint_files(path / subfolder, stem, variant)
    if not files or dtype not in (torch.float16, torch.bfloat16):
        return None
    headers = [read_header(f)[1] for f in files]
    names = {e["dtype"] for h in headers for e in h.values()}
    if not names <= SAFETENSORS_DTYPES.keys():
        return None  # a dtype this reader does not know: as from_pretrained does it
    floats = {d for d in (getattr(torch, SAFETENSORS_DTYPES[n]) for n in names) if d.is_floating_point}
    if len(floats) != 1 or floats == {dtype}:
        return None  # nothing to convert, or mixed float dtypes: as from_pretrained does it
    (stored_float,) = floats
    # Built in the checkpoint's dtype, the model's tensors are views of the mapped files that nothing reads.
    model = cls.from_pretrained(path, subfolder=subfolder, dtype=stored_float, variant=variant)
    tensors = model.state_dict(keep_vars=True)
    if any(name not in tensors for h in headers for name in h):
        logger.debug("%s/%s: checkpoint names differ from the model's; loading as usual", path, subfolder)
        return None
    keep = fp32_rule(model, dtype)

    def dtype_for(name: str, src):
        return (torch.float32 if keep(name) else dtype) if src.is_floating_point else src

    replaced: dict[int, tuple] = {}
    for f in files:
        _replace(model, converted_tensors(f, dtype_for), replaced)
    # What the checkpoint lacks (non-persistent buffers, weights the model made itself) gets the dtype the
    # model has when built with ``dtype`` as the default, as from_pretrained builds it.
    left = {n: t for n, t in [*model.named_parameters(), *model.named_buffers()]
            if id(t) not in replaced and t.is_floating_point()}
    built = built_dtypes(cls, model, dtype) if left else {}
    for name, t in left.items():
        want = torch.float32 if keep(name) else built.get(name, t.dtype)
        if t.dtype != want:
            _replace(model, {name: t.detach().to(want)}, replaced)
    if hasattr(model, "_keep_in_fp32_modules_strict"):  # transformers records the dtype it loaded in
        model.config.dtype = dtype
    return model


def built_dtypes(cls, model, dtype) -> dict[str, Any]:
    """{name: dtype} of the parameters and buffers of ``cls`` built from ``model``'s config on the meta device
    with ``dtype`` as torch's default dtype (what from_pretrained does while it builds a model)."""
    import torch

    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
        with torch.device("meta"):
            fresh = cls(model.config) if hasattr(model, "_keep_in_fp32_modules_strict") else cls.from_config(model.config)
    finally:
        torch.set_default_dtype(previous)
    return {n: t.dtype for n, t in [*fresh.named_parameters(), *fresh.named_buffers()]}


def _replace(model, tensors: dict[str, Any], replaced: dict[int, tuple]) -> None:
    """Give each named parameter or buffer its new value: a parameter keeps its object (tied weights stay
    tied), a buffer is set anew on its module. ``replaced``: id -> (old, new), the old kept so no id is reused."""
    import torch

    for name, value in tensors.items():
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        old = getattr(owner, leaf)
        if id(old) in replaced:
            continue
        if isinstance(old, torch.nn.Parameter):
            old.data = value
        else:
            setattr(owner, leaf, value)
        replaced[id(old)] = (old, value)


def fp32_rule(model, dtype) -> Callable[[str], bool]:
    """Which tensors ``from_pretrained(dtype=dtype)`` keeps in float32: diffusers' ``_keep_in_fp32_modules``
    (a module name among the dotted parts), transformers' ``_keep_in_fp32_modules_strict`` (fp16 and bf16)
    and ``_keep_in_fp32_modules`` (fp16 only), patterns searched in the name."""
    import torch

    if hasattr(model, "_keep_in_fp32_modules_strict"):  # transformers
        patterns = list(model._keep_in_fp32_modules_strict or [])
        if dtype == torch.float16:
            patterns += list(model._keep_in_fp32_modules or [])
        if not patterns:
            return lambda name: False
        rx = re.compile("|".join(f"(?:{p.replace('*', '.*')})" for p in patterns))
        return lambda name: rx.search(name) is not None
    modules = model._keep_in_fp32_modules or []
    modules = [modules] if isinstance(modules, str) else list(modules)
    return lambda name: any(m in name.split(".") for m in modules)


# -- storage variants --------------------------------------------------------------------------------------


def check_weights(weights: str, device: str, dtype: str, *, lora: bool = False, field: str = "weights") -> None:
    """Refuse, before loading, a ``weights`` storage this device, dtype or install cannot run (InvalidRequest
    naming the field, ``weights`` or ``text_encoder_weights``, and the nearest valid value, ``auto``)."""
    if weights == "auto":
        return
    if field == "text_encoder_weights" and weights in FAST:
        raise InvalidRequest(f"text_encoder_weights: {weights} computes a denoiser's blocks in 8 bits; a text "
                             f"encoder runs once per prompt and takes storage formats only; nearest valid: "
                             f"{weights.split('-')[0]}", field=field)
    try:
        _check_weights(weights, device, lora)
    except InvalidRequest as e:
        raise InvalidRequest(str(e).replace("weights:", f"{field}:", 1), field=field) from None


def _check_weights(weights: str, device: str, lora: bool) -> None:
    import torch

    if lora:
        raise InvalidRequest(f"weights: {weights} storage does not take a LoRA adapter yet; nearest valid: auto",
                             field="weights")
    if weights == "fp8":
        if not hasattr(torch, "float8_e4m3fn"):
            raise InvalidRequest(f"weights: this PyTorch ({torch.__version__}) has no float8 type; nearest valid: auto",
                                 field="weights")
        if str(device).startswith("mps"):
            raise InvalidRequest("weights: Apple GPUs (mps) cannot store float8 tensors; nearest valid: auto",
                                 field="weights")
    elif weights in FAST:
        fast_check(weights, device)
    elif weights == "int8":
        needs_torchao(weights)
    else:
        raise InvalidRequest(f"weights: unknown storage {weights!r}; nearest valid: auto", field="weights")


def denoisers(family, components: dict[str, Any]) -> list[str]:
    """The components that run every step: the family's denoiser, and Wan 2.2's second transformer."""
    return [n for n in dict.fromkeys((family.denoiser, "transformer_2")) if components.get(n) is not None]


def text_encoders(family, components: dict[str, Any]) -> list[str]:
    """The components that encode the prompt (the text encoders; tokenizers hold no weights)."""
    return [c.name for c in family.components if c.prompt and c.module and components.get(c.name) is not None]


def apply_weights(family, components: dict[str, Any], weights: str, compute_dtype,
                  text_weights: str = "auto") -> dict[str, Any]:
    """Store the denoiser(s) of freshly loaded ``components`` as ``weights`` says, and the text encoder(s) as
    ``text_weights`` says (in place; never call this on a cached model's components; a text encoder not loaded
    yet is stored so when it loads): ``fp8``, float8_e4m3fn storage computed in ``compute_dtype`` with
    diffusers' layerwise casting (its default skips: norms, embeddings); ``int8``, torchao's int8 weight-only
    quantisation."""
    for names, how in ((denoisers(family, components) if weights != "auto" else [], weights),
                       (text_encoders(family, components) if text_weights != "auto" else [], text_weights)):
        for name in names:
            value = dict.get(components, name)  # a deferred text encoder stays unloaded
            if isinstance(value, Deferred):
                components[name] = Deferred(name, lambda d=value, n=name, h=how: store(d.get(), h, compute_dtype, n))
            else:
                store(value, how, compute_dtype, name)
    return components


def compute_dtype(module):
    """The dtype ``module`` computes in: its own, or where its linear layers are stored in float8 (``fp8``
    storage), that of its other floating weights (the embeddings and norms it keeps)."""
    import torch

    fp8 = {torch.float8_e4m3fn, torch.float8_e5m2}
    floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
    if not any(d in fp8 for d in floats):
        return module.dtype
    return next((d for d in floats if d not in fp8), torch.float32)


def store(module, weights: str, compute_dtype, name: str = ""):
    """``module`` stored as ``weights`` (``fp8``, ``int8``, or a compute format of
    :mod:`t2v.models.fastcompute`), in place; returns it."""
    import torch

    if weights == "fp8":
        if hasattr(module, "enable_layerwise_casting"):  # a diffusers model: its own skips
            module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
        else:  # a transformers text encoder: its linear layers but those it keeps in fp32 (T5's ``wo``, whose
            # dtype its feed-forward reads to cast the activations)
            from diffusers.hooks import apply_layerwise_casting
            from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

            keep = tuple(getattr(module, "_keep_in_fp32_modules", None) or ())
            apply_layerwise_casting(module, storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype,
                                    skip_modules_pattern=DEFAULT_SKIP_MODULES_PATTERN + keep)
    elif weights == "int8":
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(module, Int8WeightOnlyConfig())
    elif weights in FAST:
        quantise(module, weights, name)
    logger.info("%s stored as %s (computing in %s)", name or type(module).__name__, weights, compute_dtype)
    return module
