"""What a dry run counts of one call (:func:`meta_cost`): the peak bytes of the tensors alive at once, the FLOPs and
the operator calls, on PyTorch's ``meta`` device (real tensors count the same)."""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterable, Iterator, NamedTuple

#: The parts of a model a dry run calls: its conditioning encoders, its denoiser, its VAE (and vocoder).
PARTS = ("text", "denoiser", "vae")
_ONLY: ContextVar[frozenset[str] | None] = ContextVar("t2v_dry_run_parts", default=None)


class _LiveBytes:
    """Dispatch mode that tracks the peak bytes of tensors alive at once (works on the meta device), above the
    FLOP counter. A call it has seen with the same input metadata is not run again: its outputs are made from the
    earlier call's metadata and the FLOPs the counter below counted of it then are counted again (:func:`reuse_key`).
    Most of a dry run's time went into the counter's Python decompositions of the same calls, layer after layer."""

    def __init__(self, counter) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker, calls = self, _CALLS
        flops = counter.flop_counts["Global"]  # what get_total_flops() sums

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                key = reuse_key(func, args, kwargs)
                if key is not None:
                    hit = calls.get(key)
                    if hit is not None:
                        meta, counted = hit
                        out = _make(meta)
                        if counted:
                            flops[func._overloadpacket] += counted
                        tracker.ops += 1
                        tracker._track(out)
                        return out
                    before = sum(flops.values())
                out = func(*args, **kwargs)
                tracker.ops += 1
                tracker._track(out)
                if key is not None:
                    _keep(calls, key, out, sum(flops.values()) - before)
                return out

        self.mode = Mode()
        self.live = 0
        self.peak = 0
        self.ops = 0  # operator calls
        self._ids: set[int] = set()

    def _track(self, out: Any) -> None:
        import torch

        if isinstance(out, (list, tuple)):
            for o in out:
                self._track(o)
            return
        if not isinstance(out, torch.Tensor) or out._is_view():
            return  # views share their base's memory
        key = id(out)
        if key in self._ids:
            return
        n = out.numel() * out.element_size()
        self._ids.add(key)
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(out, self._free, key, n)

    def _free(self, key: int, n: int) -> None:
        self._ids.discard(key)
        self.live -= n

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


class _Uncached(Exception):
    """An operator call whose outputs :class:`_MetaOutputs` cannot reuse (a non-meta tensor, an argument it cannot
    key on, an output that is not a new tensor)."""


_SCALARS = (int, float, bool, str, type(None))


def _arg_key(x: Any) -> Any:
    """What a meta operator's output depends on of one argument: a tensor's metadata, a plain value's type and
    value (so 1 and 1.0, which promote differently, differ)."""
    import torch

    if isinstance(x, torch.Tensor):
        if x.device.type != "meta" or x.layout is not torch.strided or x.is_quantized or x.is_conj() or x.is_neg():
            raise _Uncached
        return (tuple(x.shape), x.stride(), x.dtype, x.storage_offset())
    if isinstance(x, (list, tuple)):
        return (type(x), tuple(_arg_key(i) for i in x))
    if isinstance(x, dict):
        return (dict, tuple((k, _arg_key(v)) for k, v in sorted(x.items())))
    if isinstance(x, _SCALARS) or isinstance(x, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
        return (type(x), x)
    raise _Uncached


def _out_meta(out: Any) -> Any:
    """The outputs' metadata to make them again: (shape, stride, dtype) of each new tensor (None kept)."""
    import torch

    if isinstance(out, torch.Tensor):
        if out.device.type != "meta" or out.layout is not torch.strided or out.storage_offset() or out._is_view():
            raise _Uncached
        return (tuple(out.shape), out.stride(), out.dtype)
    if isinstance(out, (list, tuple)):
        return (type(out), tuple(None if o is None else _out_meta(o) for o in out))
    raise _Uncached


def _make(meta: Any) -> Any:
    import torch

    if isinstance(meta[0], type):
        return meta[0](tuple(None if m is None else _make(m) for m in meta[1]))  # a list, tuple or return type
    shape, stride, dtype = meta
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


class _MetaOutputs:
    """Dispatch mode, below the counters, that makes a meta operator's outputs from those of an earlier call with
    the same input metadata instead of running its meta kernel again: a meta output depends only on its inputs'
    shapes, strides and dtypes and the plain arguments, and a model repeats the same calls (each layer, each
    frame chunk). Operators that mutate or alias their inputs always run. The counters above see every call as
    before; most of a dry run's time was PyTorch's Python meta kernels and decompositions."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        outputs = _OUTPUTS

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                key = reuse_key(func, args, kwargs)
                if key is not None:
                    hit = outputs.get(key)
                    if hit is not None:
                        return _make(hit[0])
                out = func(*args, **kwargs)
                if key is not None:
                    _keep(outputs, key, out, 0)
                return out

        self.mode = Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


# Per process: (output metadata, FLOPs) of operator calls by :func:`reuse_key` (a few MB at most): the calls the
# counters see (_CALLS) and those below them, inside the FLOP counter's decompositions (_OUTPUTS).
_CALLS: dict[Any, Any] = {}
_OUTPUTS: dict[Any, Any] = {}
_KEEP_MAX = 50_000


def reuse_key(func, args, kwargs) -> Any:
    """What a meta operator call's outputs (and FLOPs) depend on, or None for a call that must run: an operator
    that returns a view, aliases or mutates its inputs, a tensor not on the meta device, an argument that cannot
    be keyed. The default dtype is part of the key (factory operators read it)."""
    import torch

    if not isinstance(func, torch._ops.OpOverload):
        return None  # a higher-order operator (flex attention): runs
    schema = func._schema
    if func.is_view or schema.is_mutable or any(r.alias_info is not None for r in schema.returns):
        return None
    try:
        return func, _arg_key(args), _arg_key(kwargs), torch.get_default_dtype()
    except _Uncached:
        return None


def _keep(table: dict, key: Any, out: Any, flops: int) -> None:
    """Keep ``out``'s metadata (and the ``flops`` counted of the call) under ``key``, where its outputs are new
    tensors."""
    try:
        meta = _out_meta(out)
    except _Uncached:
        return
    if len(table) >= _KEEP_MAX:
        table.clear()
    table[key] = (meta, flops)


class Cost(NamedTuple):
    """What :func:`meta_cost` counts of one call: peak live bytes, FLOPs and aten operator calls."""

    peak: int
    flops: int
    ops: int


@contextmanager
def only(parts: Iterable[str] | None) -> Iterator[None]:
    """Within, :func:`meta_cost` counts only calls of these ``parts`` (None: all) and the others cost nothing: a
    dry run that needs only the denoiser's numbers skips the encoders and the VAE, most of a small model's."""
    token = _ONLY.set(None if parts is None else frozenset(parts))
    try:
        yield
    finally:
        _ONLY.reset(token)


def meta_cost(fn, part: str = "denoiser") -> Cost:
    """The :class:`Cost` of ``fn()`` (on meta tensors for the dry run; real ones count the same), a call of the
    model's ``part`` (one of :data:`PARTS`); zero, without calling it, where :func:`only` leaves ``part`` out."""
    if part not in PARTS:
        raise ValueError(f"part: {part!r} is not one of {PARTS}")
    wanted = _ONLY.get()
    if wanted is not None and part not in wanted:
        return Cost(0, 0, 0)
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), _MetaOutputs(), counter, _LiveBytes(counter) as live:
        fn()
    return Cost(live.peak, counter.get_total_flops(), live.ops)
