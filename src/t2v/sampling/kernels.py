"""The attention kernels ``--attention`` names: what each needs, and the diffusers back-end it runs as.

Every kernel goes through diffusers' attention dispatcher, set on the attention processors of a run's private
view of the denoiser (:mod:`t2v.sampling.accel`), never through a process-wide switch (PyTorch's
``sdpa_kernel`` context and diffusers' active back-end are both global), so concurrent runs keep theirs.

- ``sdpa``: PyTorch's scaled-dot-product attention, which picks its own back-end per call (``auto`` leaves the
  model as loaded, which is the same kernel).
- ``sdpa-flash``, ``sdpa-efficient``, ``sdpa-cudnn``, ``sdpa-math``: SDPA pinned to one of its back-ends
  (FlashAttention-2 built into PyTorch, on CUDA and on the CPU; memory-efficient, CUDA; cuDNN, CUDA; the
  plain math reference, anywhere).
- ``flex``: PyTorch's flex attention, compiled (eager flex is a slow reference) unless the run's blocks are
  compiled already; the text's padding mask becomes an additive score modification
  (:func:`flex_attention`, which also reads the masks diffusers' own flex function misreads).
- ``flash`` (the flash-attn package) and ``sage`` (sageattention, :mod:`t2v.sampling.sage`): CUDA kernels.

A kernel that takes no mask (:data:`t2v.requests.MASKLESS_KERNELS`) is offered only to denoisers whose
attention passes none (the family cards' ``kernels``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from t2v.progress import carve
from t2v.sampling import sage


@dataclass(frozen=True)
class Kernel:
    """One ``--attention`` value: the diffusers back-end it runs as and what it needs."""

    name: str
    backend: str  # diffusers' AttentionBackendName value
    cpu: bool = True  # runs on a CPU too (else CUDA only)
    half: bool = False  # on CUDA, fp16/bf16 only
    capability: tuple[int, int] | None = None  # the least CUDA compute capability
    package: tuple[str, str] | None = None  # (module, pip name)
    compiles: bool = False  # runs through torch.compile (refused where compiling cannot run)


KERNELS: dict[str, Kernel] = {k.name: k for k in (
    Kernel("sdpa", "native"),
    Kernel("sdpa-flash", "_native_flash", half=True, capability=(8, 0)),
    Kernel("sdpa-efficient", "_native_efficient", cpu=False),
    Kernel("sdpa-cudnn", "_native_cudnn", cpu=False, half=True, capability=(8, 0)),
    Kernel("sdpa-math", "_native_math"),
    Kernel("flex", "flex", compiles=True),
    Kernel("flash", "flash", cpu=False, half=True, capability=(8, 0), package=("flash_attn", "flash-attn")),
    Kernel("sage", "sage", cpu=False, half=True, capability=(8, 0), package=("sageattention", "sageattention")),
)}


def requirements(kernel: Kernel, device: str, dtype: str, capability: tuple[int, int] | None,
                 installed) -> str | None:
    """Why ``kernel`` cannot run on ``device`` (``capability``: the CUDA card's) in ``dtype``, or None.
    ``installed(module)`` says whether a package can be imported."""
    if device not in ("cuda", "cpu") or (device == "cpu" and not kernel.cpu):
        return f"needs a CUDA GPU{' or a CPU' if kernel.cpu else ''} and this run is on {device}"
    if device == "cuda" and kernel.capability and capability and capability < kernel.capability:
        want = ".".join(map(str, kernel.capability))
        return f"needs a GPU of compute capability {want} or later (Ampere), and this one is {capability[0]}.{capability[1]}"
    if kernel.package and not installed(kernel.package[0]):
        return f"needs the {kernel.package[1]} package, which is not installed (pip install {kernel.package[1]})"
    if device == "cuda" and kernel.half and dtype == "fp32":
        return "computes in fp16 or bf16 on a GPU, not fp32; use --dtype bf16 (or auto)"
    return None


def backend_name(attention: str) -> str:
    """The diffusers attention back-end ``attention`` runs as: sageattention 1.x through t2v's wrapper
    (:mod:`t2v.sampling.sage`), flex through :func:`flex_attention`."""
    if attention == "sage":
        return sage.backend_name()
    if attention == "flex":
        register_flex()
    return KERNELS[attention].backend


# -- processors that call SDPA themselves ----------------------------------------------------------------------
# Attention processors without a dispatcher back-end that call PyTorch's SDPA directly, whose calls t2v sends
# to the dispatcher instead (on a private view): CogVideoX's.
ROUTED_PROCESSORS = ("CogVideoXAttnProcessor2_0",)
_route_mode: list = []


def sdpa_route_class():
    """The torch function mode (thread-local, and traced by torch.compile) in which PyTorch's SDPA calls go to
    diffusers' dispatcher with its ``backend``; made once, outside any traced code."""
    if not _route_mode:
        import torch.nn.functional as F
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from torch.overrides import TorchFunctionMode

        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")

        class SdpaRoute(TorchFunctionMode):
            def __init__(self, backend):
                super().__init__()
                self.backend = backend

            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func is not F.scaled_dot_product_attention:
                    return func(*args, **kwargs)
                given = {**dict(zip(names, args)), **kwargs}
                q, k, v = (given.pop(n).transpose(1, 2) for n in names[:3])
                return dispatch_attention_fn(q, k, v, backend=self.backend, **given).transpose(1, 2)

        _route_mode.append(SdpaRoute)
    return _route_mode[0]


class RoutedProcessor:
    """A processor of :data:`ROUTED_PROCESSORS` whose SDPA calls run with ``backend`` (the attribute diffusers'
    dispatching processors carry, so the kernel reads the same on either kind)."""

    def __init__(self, inner, backend):
        self.inner, self._attention_backend, self.route = inner, backend, sdpa_route_class()

    # The wrapped processor's own parameters: diffusers' Attention passes a processor only the keyword arguments
    # its signature names (CogVideoX's rotary embedding among them).
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None):
        with self.route(self._attention_backend):
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask=attention_mask,
                              image_rotary_emb=image_rotary_emb)


# -- compile time -------------------------------------------------------------------------------------------------
def compile_seconds() -> float:
    """Seconds torch.compile (dynamo and its back-end) has spent compiling in this process so far."""
    try:
        from torch._dynamo.utils import compilation_time_metrics
    except ImportError:  # pragma: no cover - a torch without dynamo's metrics
        return 0.0
    return float(sum(compilation_time_metrics.get("_compile.compile_inner", ())))


def compile_error(error: BaseException) -> bool:
    """Whether ``error`` comes from dynamo or inductor (not from the model's own code or a cancel)."""
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:  # pragma: no cover
        return False
    return isinstance(error, TorchDynamoException) or type(error).__module__.startswith(("torch._inductor",
                                                                                          "torch._dynamo"))


def run_compiled(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` (a compiled function); the time it spent compiling goes to the run's ``compile``
    stage (the record's ``timings.compile_s``), out of the stage it ran in. Compiles are counted process-wide,
    so a run beside another that compiles at the same moment is charged for both."""
    before = compile_seconds()
    out = fn(*args, **kwargs)
    carve("compile", compile_seconds() - before)
    return out


# -- flex ------------------------------------------------------------------------------------------------------
COMPILE_FLEX = True  # compile flex_attention outside compiled blocks (tests run the eager reference: same maths)
logger = logging.getLogger(__name__)
_flex_lock = threading.Lock()
_flex_state: dict[str, object] = {}


def flex_function():
    """PyTorch's flex_attention, compiled once per process (eager inside a graph being compiled: the graph
    compiles it)."""
    import torch
    from torch.nn.attention.flex_attention import flex_attention as eager

    if not COMPILE_FLEX or torch.compiler.is_compiling() or _flex_state.get("failed"):
        return eager
    with _flex_lock:
        if "compiled" not in _flex_state:
            _flex_state["compiled"] = torch.compile(eager, dynamic=False)
        return _flex_state["compiled"]


def additive_bias(attn_mask, query, key):
    """``attn_mask`` as an additive bias broadcastable to (batch, heads, queries, keys): a boolean mask keeps
    True, an additive one is taken as it is; a 2-D mask is the keys' padding, (batch, keys), as PyTorch's SDPA
    back-end in diffusers reads it."""
    import torch

    bias = attn_mask
    if bias.dtype == torch.bool:
        bias = torch.zeros(bias.shape, dtype=query.dtype, device=bias.device).masked_fill(~bias, float("-inf"))
    else:
        bias = bias.to(query.dtype)
    if bias.ndim == 2:
        bias = bias[:, None, None, :]
    while bias.ndim < 4:
        bias = bias.unsqueeze(0)
    batch, tokens, heads, _ = query.shape
    return bias.expand(batch, heads, tokens, key.shape[1])


def flex_attention(query, key, value, attn_mask=None, is_causal: bool = False, scale: float | None = None,
                   enable_gqa: bool = False, return_lse: bool = False, _parallel_config=None):
    """Flex attention of (batch, tokens, heads, channels) tensors as diffusers' dispatcher hands them: a tensor
    mask (boolean or additive, 2-D padding or 4-D) as a score modification, a ``BlockMask`` (Kandinsky 5's
    sparse attention) as it is, causal as a block mask."""
    from torch.nn.attention import flex_attention as flex

    if _parallel_config is not None:
        raise ValueError("t2v's flex attention does not take context parallelism")
    score_mod = block_mask = None
    if isinstance(attn_mask, flex.BlockMask):
        block_mask = attn_mask
    elif attn_mask is not None:
        bias = additive_bias(attn_mask, query, key)

        def score_mod(score, b, h, q, kv):
            return score + bias[b, h, q, kv]
    elif is_causal:
        batch, tokens, heads, _ = query.shape

        def causal(b, h, q, kv):
            return q >= kv

        block_mask = flex.create_block_mask(causal, batch, heads, tokens, key.shape[1], device=query.device)
    q, k, v = (t.permute(0, 2, 1, 3) for t in (query, key, value))
    fn, kwargs = flex_function(), dict(score_mod=score_mod, block_mask=block_mask, scale=scale, enable_gqa=enable_gqa,
                                       return_lse=return_lse)
    try:
        out = run_compiled(fn, q, k, v, **kwargs)
    except Exception as e:
        if fn is flex.flex_attention or not compile_error(e):
            raise
        # inductor cannot build some masks' kernels on some machines (a CPU's sparse BlockMask): the reference
        # flex runs them, here and from now on in this process
        _flex_state["failed"] = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
        logger.warning("compiling flex attention failed, running it uncompiled: %s", _flex_state["failed"])
        out = flex.flex_attention(q, k, v, **kwargs)
    if return_lse:
        out, lse = out
        return out.permute(0, 2, 1, 3), lse.permute(0, 2, 1)
    return out.permute(0, 2, 1, 3)


def register_flex() -> None:
    """Put :func:`flex_attention` in diffusers' dispatcher as its ``flex`` back-end (once per process). diffusers'
    own function reads a 2-D padding mask as (batch, queries) and fails on cross-attention; t2v's reads it as
    the keys' padding, as diffusers' SDPA back-end does, and gives the same result elsewhere."""
    with _flex_lock:
        if _flex_state.get("registered"):
            return
        from diffusers.models import attention_dispatch as dispatch

        name = dispatch.AttentionBackendName.FLEX
        constraints = dispatch._AttentionBackendRegistry._constraints.get(name, [])  # noqa: SLF001  (no public getter)
        dispatch._AttentionBackendRegistry.register(name, constraints=constraints)(flex_attention)  # noqa: SLF001
        _flex_state["registered"] = True

