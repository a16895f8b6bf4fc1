"""Compute formats: ``--weights fp8-fast`` and ``int8-fast``, the denoiser's matrix products in 8 bits.

Beside the storage formats (``fp8``: float8 weights computed in bf16; ``int8``: int8 weights, weight-only),
these quantise the activations too, per run and per token (dynamic scales), so the products themselves run in
8 bits, through torchao:

- ``fp8-fast``: float8 e4m3 weights and activations with a scale per row (torchao's
  ``Float8DynamicActivationFloat8WeightConfig``, ``PerRow``); the tensor cores' fp8 products of NVIDIA Ada and
  Hopper GPUs (compute capability 8.9 or later). The name is ComfyUI's for the same thing (``fp8_e4m3fn_fast``).
- ``int8-fast``: int8 weights and activations (``Int8DynamicActivationInt8WeightConfig``): int8 products on
  Ampere and later, and on CPUs.

Only the linear layers of the denoiser's repeated blocks (its attention and feed-forward layers) are
quantised: embeddings, norms, the timestep modulation and the final projection stay in the run's dtype, as do
layers whose sizes the 8-bit kernels cannot tile (not multiples of 16). Frames differ from the bf16 run's: the
difference is measured in docs/benchmarks.md, and ``auto`` never picks these.
"""

from __future__ import annotations

import re

from t2v.errors import InvalidRequest

FAST = ("fp8-fast", "int8-fast")
FP8_CAPABILITY = (8, 9)  # Ada (sm_89) and Hopper (sm_90) have fp8 tensor cores
# Linear layers kept in the run's dtype whatever block they sit in: a part of the name (as in diffusers'
# transformers) that is a norm, an embedding, a modulation, the timestep's or the final projection.
KEEP = re.compile(r"^(norm|.*embed|.*modulation|adaln|scale_shift|proj_out$|time)", re.IGNORECASE)
TILE = 16


def check(weights: str, device: str) -> None:
    """Refuse a compute format this install or device cannot run (InvalidRequest naming ``weights`` and the
    nearest valid value)."""
    if weights == "fp8-fast":
        import torch

        if not str(device).startswith("cuda"):
            raise InvalidRequest(f"weights: fp8-fast computes in float8 on NVIDIA Ada or Hopper GPUs (compute "
                                 f"capability 8.9 or later) and this run is on {device}; nearest valid: int8-fast "
                                 f"(8-bit products here) or fp8 (float8 storage)", field="weights")
        index = torch.device(device).index or 0
        capability = tuple(torch.cuda.get_device_capability(index))
        if capability < FP8_CAPABILITY:
            raise InvalidRequest(f"weights: fp8-fast needs an Ada or Hopper GPU (compute capability 8.9 or "
                                 f"later); this {torch.cuda.get_device_name(index)} is {capability[0]}."
                                 f"{capability[1]}; nearest valid: int8-fast", field="weights")
    needs_torchao(weights)


def needs_torchao(weights: str) -> None:
    """Refuse ``weights`` (a format torchao makes) where torchao cannot be imported."""
    try:
        import torchao.quantization  # noqa: F401
    except Exception:  # not installed, or built for another PyTorch
        raise InvalidRequest(f"weights: {weights} needs torchao (`pip install torchao`); nearest valid: auto",
                             field="weights") from None


def block_prefixes(module) -> list[str]:
    """The names of ``module``'s repeated blocks (diffusers' ``_repeated_blocks``; every module when it names none)."""
    kinds = set(getattr(module, "_repeated_blocks", None) or ())
    if not kinds:
        return [""]
    return [name + "." for name, sub in module.named_modules() if type(sub).__name__ in kinds]


def quantised_layers(module) -> list[str]:
    """The linear layers of ``module`` that the 8-bit formats compute in 8 bits (see the module's docstring)."""
    import torch

    prefixes = block_prefixes(module)
    names = []
    for name, sub in module.named_modules():
        if not isinstance(sub, torch.nn.Linear) or not any(name.startswith(p) for p in prefixes):
            continue
        inner = next((name[len(p):] for p in prefixes if p and name.startswith(p)), name)
        if any(KEEP.match(part) for part in inner.split(".")) or sub.in_features % TILE or sub.out_features % TILE:
            continue
        names.append(name)
    return names


def quantise(module, weights: str, name: str = "") -> int:
    """Compute ``module``'s block linear layers in 8 bits (``fp8-fast`` or ``int8-fast``), in place; returns how
    many layers were quantised."""
    from torchao.quantization import quantize_

    chosen = set(quantised_layers(module))
    if not chosen:
        raise InvalidRequest(f"weights: {name or type(module).__name__} has no linear layers {weights} can "
                             f"compute in 8 bits; nearest valid: auto", field="weights")
    quantize_(module, config(weights), filter_fn=lambda sub, fqn: fqn in chosen)
    return len(chosen)


def config(weights: str):
    """torchao's quantisation config for ``weights``."""
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig,
                                      Int8DynamicActivationInt8WeightConfig, PerRow)

    if weights == "fp8-fast":
        return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    return Int8DynamicActivationInt8WeightConfig()
