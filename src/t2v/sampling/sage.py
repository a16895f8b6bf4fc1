"""SageAttention for ``--attention sage`` whatever sageattention release is installed.

diffusers' own ``sage`` back-end wants sageattention 2.1.1 or later, which PyPI does not have (it publishes
1.0.6, a Triton kernel for Ampere, Ada and Hopper: Q and K quantised to int8 per block, P·V in fp16). With 2.1.1
or later installed, ``sage`` is diffusers' back-end. Otherwise t2v wraps 1.x's ``sageattn`` itself and offers it
through diffusers' dispatcher under the name of the back-end it is (``_sage_qk_int8_pv_fp16_triton``: Q·K in
int8, P·V in fp16, Triton), whose own function needs sageattention 2 and so cannot run in such a process.

The wrapper:

- is a ``torch.library`` custom op, so ``--compile``'s full-graph blocks trace it as one opaque call;
- smooths K (subtracts its mean over the sequence, which leaves softmax unchanged) out of place: 1.x does it
  in place on the caller's tensor;
- pads a head size the kernel has no code for (it has 64, 96 and 128) with zeros up to the next one, with the
  softmax scale of the real size, and drops the padding from the output;
- takes no mask, no dropout and no log-sum-exp (the dispatcher's constraints and the family cards keep those
  away).
"""

from __future__ import annotations

import math

HEAD_SIZES = (64, 96, 128)
FALLBACK_BACKEND = "_sage_qk_int8_pv_fp16_triton"  # diffusers' AttentionBackendName value for this kernel

_registered = False


def diffusers_takes_it() -> bool:
    """Whether diffusers' own ``sage`` back-end can run here (sageattention 2.1.1 or later; diffusers' own test)."""
    from diffusers.models.attention_dispatch import _CAN_USE_SAGE_ATTN  # noqa: PLC2701  (no public name)

    return bool(_CAN_USE_SAGE_ATTN)


def backend_name() -> str:
    """The diffusers back-end ``--attention sage`` runs as in this process (registering t2v's wrapper first
    where only sageattention 1.x is installed)."""
    if diffusers_takes_it():
        return "sage"
    register()
    return FALLBACK_BACKEND


def padded_size(head: int) -> int:
    """The head size the kernel runs ``head`` at (the next one it has code for)."""
    for size in HEAD_SIZES:
        if head <= size:
            return size
    raise ValueError(f"sage attention takes heads of at most {HEAD_SIZES[-1]} channels, not {head}")


def kernel_call(query, key, value, is_causal: bool, scale: float):
    """sageattention 1.x's ``sageattn`` on (batch, tokens, heads, channels) tensors, as the dispatcher hands them."""
    from sageattention import sageattn

    return sageattn(query, key, value, tensor_layout="NHD", is_causal=is_causal, sm_scale=scale, smooth_k=False)


def sage_nhd(query, key, value, is_causal: bool = False, scale: float | None = None):
    """Attention of (batch, tokens, heads, channels) tensors through sageattention 1.x: K smoothed out of place,
    heads padded to a size the kernel has, the output in the query's dtype and head size."""
    import torch.nn.functional as F

    head = query.shape[-1]
    scale = scale if scale is not None else 1.0 / math.sqrt(head)
    key = key - key.mean(dim=1, keepdim=True)
    size = padded_size(head)
    if size != head:
        query, key, value = (F.pad(t, (0, size - head)) for t in (query, key, value))
    out = kernel_call(query.contiguous(), key.contiguous(), value.contiguous(), is_causal, scale)
    return out[..., :head] if size != head else out


def register() -> None:
    """Put the wrapper in diffusers' dispatcher under :data:`FALLBACK_BACKEND` (once per process)."""
    global _registered
    if _registered:
        return
    import torch
    from diffusers.models import attention_dispatch as dispatch

    schema = "(Tensor query, Tensor key, Tensor value, bool is_causal, float scale) -> Tensor"

    @torch.library.custom_op("t2v::sage_attention", mutates_args=(), schema=schema)
    def sage_op(query, key, value, is_causal, scale):
        return sage_nhd(query, key, value, is_causal, scale)

    @sage_op.register_fake
    def _(query, key, value, is_causal, scale):
        return query.new_empty(query.shape[:-1] + value.shape[-1:])

    def sage_attention(query, key, value, attn_mask=None, is_causal: bool = False, scale: float | None = None,
                       return_lse: bool = False, _parallel_config=None):
        if attn_mask is not None or return_lse or _parallel_config is not None:
            raise ValueError("t2v's sage attention takes no mask, log-sum-exp or context parallelism")
        head = query.shape[-1]
        return sage_op(query, key, value, bool(is_causal), float(scale if scale is not None else head ** -0.5))

    name = dispatch.AttentionBackendName(FALLBACK_BACKEND)
    dispatch._AttentionBackendRegistry.register(  # noqa: SLF001  (diffusers' registry has no public setter)
        name, constraints=[dispatch._check_device_cuda, dispatch._check_qkv_dtype_bf16_or_fp16],  # noqa: SLF001
    )(sage_attention)
    _registered = True
