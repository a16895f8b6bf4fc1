"""The post-processing stage: the same for every family and mode, between sampling and export, and for any
existing file (``t2v post``). The steps are registered in :data:`STEPS`, run in that order; each notes itself in
the record (name, parameters, seconds, frames and size after it), so a replay runs the same steps. Adding a step
is its own module (a :class:`~t2v.post.steps.PostStep`) and one entry here."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from t2v.errors import Cancelled, InvalidRequest
from t2v.export import frames_sha256
from t2v.post.deflicker import DEFLICKER
from t2v.post.interpolate import INTERPOLATE
from t2v.post.steps import Clip, PostStep
from t2v.post.upscale import UPSCALE
from t2v.requests import PostSpec

STEPS: tuple[PostStep, ...] = (DEFLICKER, INTERPOLATE, UPSCALE)

# emit(stage, step, total, message): t2v.progress.ProgressEmitter's signature
Emit = Callable[..., None]


def planned(spec: PostSpec, fps: float) -> list[tuple[PostStep, dict[str, Any]]]:
    """The steps ``spec`` asks for, in order, with their parameters (InvalidRequest naming ``post.<field>``
    for a target fps the clip's fps cannot reach)."""
    out = []
    for step in STEPS:
        try:
            params = step.params(spec, fps)
        except InvalidRequest as e:
            raise InvalidRequest(f"post.{e}", field=f"post.{e.field or 'target_fps'}") from None
        if params is not None:
            out.append((step, params))
    return out


def run_post(frames: np.ndarray, fps: float, spec: PostSpec, *, emit: Emit | None = None,
             cancel: Callable[[], bool] | None = None) -> tuple[np.ndarray, float, list[dict[str, Any]]]:
    """Apply ``spec`` to ``frames`` ((F, H, W, 3) uint8) shown at ``fps``, step by step. Returns the new frames,
    their fps and the steps' record entries."""
    steps: list[dict[str, Any]] = []
    clip = [np.ascontiguousarray(f) for f in frames]
    cancel = cancel or (lambda: False)
    for step, params in planned(spec, fps):
        def on_frame(done: int, total: int, name: str = step.name) -> None:
            if emit is not None:
                emit("post", done, total, message=name)
            if cancel():
                raise Cancelled(f"cancelled during {name}")

        t0 = time.perf_counter()
        clip, fps = step.apply(clip, params, fps, on_frame)
        h, w = clip[0].shape[:2]
        steps.append({"name": step.name, **params, "seconds": round(time.perf_counter() - t0, 4), "frames": len(clip),
                      "width": w, "height": h, "fps": fps})
    return np.stack(clip), fps, steps


def post_record(steps: list[dict[str, Any]], frames: np.ndarray, fps: float) -> dict[str, Any]:
    """The record's ``post`` entry: the steps and what they made (its frames' sha256 too)."""
    return {"steps": steps, "fps": fps, "num_frames": int(frames.shape[0]), "width": int(frames.shape[2]),
            "height": int(frames.shape[1]), "frames_sha256": frames_sha256(frames)}


def check_post(spec: PostSpec, fps: float, *, num_frames: int, width: int, height: int, max_frames: int | None = None,
               max_side: int | None = None, max_bytes: int | None = None) -> None:
    """Everything about ``spec`` that can be checked before any work (InvalidRequest naming ``post.<field>``): the
    target fps, each step's own checks (the upscaler's name or file, RIFE's model), the clip it would make
    against the limits, and (``max_bytes``) the frames held at once against a memory budget."""
    clip = Clip(fps=fps, num_frames=num_frames, width=width, height=height, max_frames=max_frames, max_side=max_side)
    peak = 0
    for step, params in planned(spec, fps):
        step.check(spec, params, clip)
        after = step.output(params, clip)
        peak = max(peak, clip_bytes(clip) + clip_bytes(after))  # a step holds its input and its output
        clip = after
    peak = max(peak, 2 * clip_bytes(clip))  # the result, then its stacked copy
    if max_bytes is not None and peak > max_bytes:
        most = max(0, int(num_frames * max_bytes / peak))
        raise InvalidRequest(f"post: these steps on {num_frames} frames of {width}x{height} hold up to "
                             f"{peak / 2**30:.1f} GiB of frames at once, over this server's memory budget of "
                             f"{max_bytes / 2**30:.1f} GiB (T2V_MEMORY_BUDGET_GB); at most {most} frames of that size, "
                             "or fewer steps", field="post")


def post_cost(spec: PostSpec, fps: float, *, num_frames: int, width: int, height: int) -> int:
    """The frames x width x height each step makes, summed: the work ``spec`` does on such a clip."""
    clip, cost = Clip(fps=fps, num_frames=num_frames, width=width, height=height), 0
    for step, params in planned(spec, fps):
        clip = step.output(params, clip)
        cost += clip.num_frames * clip.width * clip.height
    return cost


def clip_bytes(clip: Clip) -> int:
    """The bytes of ``clip``'s frames (uint8 RGB)."""
    return clip.num_frames * clip.width * clip.height * 3
