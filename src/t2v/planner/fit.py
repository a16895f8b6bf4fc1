"""Whether a request fits: the memory budget, and the refusal that says what would fit instead.

The planner (:mod:`t2v.planner.memory`) refuses a request whose leanest plan is predicted to need more than
the budget. The refusal names the fields, the prediction and the budget, and the largest frame count (at
the requested size) and the largest size (at the requested frame count, same aspect ratio) that would fit,
found by bisection on the planner's estimates (arithmetic only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from t2v.errors import DoesNotFit

GiB = 2**30
BUDGET_SHARE = 0.9  # of the free memory, when no budget is configured
MIN_SIDE = 16


def memory_budget(device: str, budget_gb: float | None = None) -> int:
    """Bytes a job may use on ``device``: ``budget_gb`` when set (``T2V_MEMORY_BUDGET_GB``), else 90% of the
    memory free for it (RAM, or the GPU's memory when the job runs on a GPU)."""
    if budget_gb:
        return int(budget_gb * GiB)
    return int(free_memory(device) * BUDGET_SHARE)


def free_memory(device: str) -> int:
    """Bytes a new allocation on ``device`` may use: what is free plus what this process already holds there
    (its RSS on the CPU, its allocator's reserve on a GPU), since predictions count this process's own use."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free) + int(torch.cuda.memory_reserved(torch.device(device)))
    import os

    import psutil

    rss = psutil.Process(os.getpid()).memory_info().rss if device == "cpu" else 0
    return int(psutil.virtual_memory().available) + rss


def _gib(n: float) -> str:
    return f"{n / GiB:,.1f} GiB" if n >= GiB / 10 else f"{n / 2**20:,.0f} MiB"


def _largest(ok, lo: int, hi: int) -> int | None:
    """The largest ``n`` in ``lo..hi`` with ``ok(n)``, for a monotone ``ok`` (None when not even ``lo``)."""
    if hi < lo or not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def _size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``width`` x ``height`` scaled so the longer side is ``long_side``, both multiples of 8 (at least 16)."""
    scale = long_side / max(width, height)
    return tuple(max(MIN_SIDE, int(round(side * scale / 8)) * 8) for side in (width, height))  # type: ignore[return-value]


def refusal(model_path: str | Path, request, leanest, budget: int, estimate_at: Callable[..., Any],
            ram_budget: int | None = None) -> DoesNotFit:
    """The error for ``request`` when ``leanest`` (its prediction with the leanest plan) exceeds ``budget`` (or,
    on an accelerator, its CPU memory ``ram_budget``); ``estimate_at`` predicts other shapes
    (:func:`t2v.planner.memory.estimate_at`)."""
    path, frames, width, height = str(model_path), request.num_frames, request.width, request.height
    if leanest.peak_bytes <= budget and ram_budget is not None and leanest.ram_bytes > ram_budget:
        return DoesNotFit(  # the weights, not the clip: no smaller size helps
            f"memory: the {leanest.plan} plan keeps this model's weights in CPU memory while the GPU runs them block "
            f"by block, about {_gib(leanest.ram_bytes)} with this process, over the RAM budget of {_gib(ram_budget)} "
            "(T2V_RAM_BUDGET_GB); 8-bit weights (--weights fp8, --text-encoder-weights fp8) or a GGUF file "
            "(--transformer) need less", field="memory")
    batch = 2 if request.guidance_scale > 1.0 else 1

    def fits(f: int, w: int, h: int) -> bool:
        p = estimate_at(path, f, h, w, batch=batch, plan=leanest.plan, device=leanest.device, dtype=leanest.dtype,
                        weights=leanest.weights, text_weights=leanest.text_weights)  # the storage it was refused at
        return p.peak_bytes <= budget

    hints = []
    most_frames = _largest(lambda f: fits(f, width, height), 1, frames - 1)
    if most_frames:
        hints.append(f"at {width}x{height} at most {most_frames} frame{'s' * (most_frames > 1)} fit")
    long_side = _largest(lambda k: fits(frames, *_size(width, height, 8 * k)), MIN_SIDE // 8, max(width, height) // 8 - 1)
    if long_side:
        w, h = _size(width, height, 8 * long_side)
        hints.append(f"at {frames} frames at most {w}x{h}")
    if not hints and not fits(1, MIN_SIDE, MIN_SIDE):
        hints.append(f"this model does not fit at any size on {leanest.device}")
    return DoesNotFit(
        f"num_frames, width, height: {frames} frames of {width}x{height} need about {_gib(leanest.peak_bytes)} on "
        f"{leanest.device} even with the leanest memory plan ({leanest.plan})"
        + (f" and the weights stored in {leanest.weights}" if getattr(leanest, "weights", "auto") != "auto" else "")
        + f", over the memory budget of {_gib(budget)}" + (f"; {', or '.join(hints)}" if hints else ""),
        field="num_frames",
    )
