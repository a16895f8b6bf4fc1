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
    """Dispatch mode that tracks the peak bytes of tensors alive at once (works on the meta device)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker.ops += 1
                tracker._track(out)
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
    with torch.inference_mode(), counter, _LiveBytes() as live:
        fn()
    return Cost(live.peak, counter.get_total_flops(), live.ops)
