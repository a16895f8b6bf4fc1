"""The precision a dry run measures in.

A dry run builds the model on the ``meta`` device and counts the bytes of the tensors alive at once. Measured
in fp32 and halved for a half-precision run, it misses what a model computes in fp32 whatever its weights'
dtype: norms, timestep modulation and attention biases upcast with ``.float()`` (a no-op on an fp32 tensor,
a new tensor of twice the size on a bf16 one). So a run in fp16 or bf16 is measured in bf16: every family's
``measure`` builds its modules and inputs through :func:`meta_modules_dtype` and :func:`meta_kwargs`, and
:func:`measuring` sets which, for the dry run in progress (a context variable: each thread its own).

Measured on an H200 (docs/benchmarks.md, GPU): halved fp32 dry runs under-counted the denoiser of
HunyuanVideo 1.5 by 45% and SkyReels-V2's by 25%, and the Wan VAE's decode by 13%; bf16 dry runs are within
10% of the measured stage peaks, or above them.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator

_HALF = contextvars.ContextVar("t2v_dry_run_half", default=False)


def is_half(dtype: str) -> bool:
    """Whether a run in ``dtype`` is measured in half precision."""
    return dtype in ("fp16", "bf16")


@contextlib.contextmanager
def measuring(half: bool) -> Iterator[None]:
    """Dry runs inside measure in bf16 (``half``) or fp32."""
    token = _HALF.set(half)
    try:
        yield
    finally:
        _HALF.reset(token)


def meta_dtype():
    """The torch dtype of the dry run in progress."""
    import torch

    return torch.bfloat16 if _HALF.get() else torch.float32


def meta_kwargs() -> dict[str, Any]:
    """``device`` and ``dtype`` for a dry run's input tensors."""
    return {"device": "meta", "dtype": meta_dtype()}


def cast(modules: dict[str, Any]) -> dict[str, Any]:
    """``modules`` (meta modules by name) moved to the dry run's dtype, in place, and returned."""
    dtype = meta_dtype()
    for module in modules.values():
        if module is not None:
            module.to(dtype)
    return modules
