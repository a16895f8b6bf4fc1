"""The post-processing stage: the same for every family and mode, between sampling and export, and for any
existing file (``t2v post``). Each step notes itself in the record (name, parameters, seconds, frames and
size after it), so a replay runs the same steps."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from t2v.errors import Cancelled
from t2v.requests import PostSpec

# emit(stage, step, total, message): t2v.progress.ProgressEmitter's signature
Emit = Callable[..., None]


def run_post(frames: np.ndarray, fps: float, spec: PostSpec, *, emit: Emit | None = None,
             cancel: Callable[[], bool] | None = None) -> tuple[np.ndarray, float, list[dict[str, Any]]]:
    """Apply ``spec`` to ``frames`` ((F, H, W, 3) uint8) shown at ``fps``: deflicker, then interpolation, then
    upscaling. Returns the new frames, their fps and the steps' record entries."""
    steps: list[dict[str, Any]] = []
    clip = [np.ascontiguousarray(f) for f in frames]
    cancel = cancel or (lambda: False)

    def progress(name: str):
        def on_frame(done: int, total: int) -> None:
            if emit is not None:
                emit("post", done, total, message=name)
            if cancel():
                raise Cancelled(f"cancelled during {name}")
        return on_frame

    def note(name: str, t0: float, **params: Any) -> None:
        h, w = clip[0].shape[:2]
        steps.append({"name": name, **params, "seconds": round(time.perf_counter() - t0, 4), "frames": len(clip),
                      "width": w, "height": h, "fps": fps})

    if spec.deflicker:
        from t2v.post.deflicker import deflicker

        t0 = time.perf_counter()
        clip = deflicker(clip, on_frame=progress("deflicker"))
        note("deflicker", t0)
    factor = spec.interpolate
    if spec.target_fps is not None:
        from t2v.post.interpolate import factor_for_fps

        factor = factor_for_fps(fps, spec.target_fps)
    if factor:
        from t2v.post.interpolate import DEFAULT_METHOD, interpolate

        method = DEFAULT_METHOD if spec.interpolation == "auto" else spec.interpolation
        t0 = time.perf_counter()
        clip = interpolate(clip, factor, method=method, fps=fps, on_frame=progress("interpolate"),
                           model=spec.interpolation_model)
        fps = fps * factor
        note("interpolate", t0, factor=factor, method=method,
             **({"model": spec.interpolation_model} if spec.interpolation_model else {}))
    if spec.upscale:
        from t2v.post.upscale import upscale

        t0 = time.perf_counter()
        clip = upscale(clip, spec.upscale, upscaler=spec.upscaler, on_frame=progress("upscale"))
        note("upscale", t0, factor=spec.upscale, upscaler=spec.upscaler)
    return np.stack(clip), fps, steps


def post_record(steps: list[dict[str, Any]], frames: np.ndarray, fps: float) -> dict[str, Any]:
    """The record's ``post`` entry: the steps and what they made (its frames' sha256 too)."""
    from t2v.export import frames_sha256

    return {"steps": steps, "fps": fps, "num_frames": int(frames.shape[0]), "width": int(frames.shape[2]),
            "height": int(frames.shape[1]), "frames_sha256": frames_sha256(frames)}


def output_factor(spec: PostSpec, fps: float) -> int:
    """Frames out per frame in: the interpolation factor (1 without); InvalidRequest for a target fps that is
    not a whole multiple of ``fps``."""
    if spec.target_fps is not None:
        from t2v.post.interpolate import factor_for_fps

        return factor_for_fps(fps, spec.target_fps)
    return spec.interpolate or 1


def check_post(spec: PostSpec, fps: float, *, num_frames: int, width: int, height: int, max_frames: int | None = None,
               max_side: int | None = None) -> None:
    """Everything about ``spec`` that can be checked before any work (InvalidRequest naming ``post.<field>``): the
    target fps, the upscaler's name or file, and the clip it would make against the limits."""
    from pathlib import Path

    from t2v.errors import InvalidRequest
    from t2v.requests import UPSCALERS

    try:
        factor = output_factor(spec, fps)
    except InvalidRequest as e:
        raise InvalidRequest(f"post.{e}", field=f"post.{e.field or 'target_fps'}") from None
    if spec.interpolation == "rife" and factor > 1:
        from t2v.post.rife import check_model, check_package

        check_model(spec.interpolation_model, field="post.interpolation_model")
        try:
            check_package()
        except InvalidRequest as e:
            raise InvalidRequest(f"post.{e}", field="post.interpolation") from None
    if spec.upscale and spec.upscaler not in UPSCALERS and not Path(spec.upscaler).expanduser().is_file():
        raise InvalidRequest(f"post.upscaler: {spec.upscaler!r} is neither one of {', '.join(UPSCALERS)} nor a weight "
                             "file", field="post.upscaler")
    frames_out = (num_frames - 1) * factor + 1 if num_frames > 1 else num_frames
    if max_frames is not None and frames_out > max_frames:
        best = max(1, (max_frames - 1) // max(1, num_frames - 1))
        raise InvalidRequest(f"post.interpolate: {factor}x makes {frames_out} frames, over the limit of {max_frames}; "
                             f"at most {best}x for {num_frames} frames", field="post.interpolate")
    scale = spec.upscale or 1
    if max_side is not None and max(width, height) * scale > max_side:
        raise InvalidRequest(f"post.upscale: {scale}x makes {width * scale}x{height * scale}, over the limit of "
                             f"{max_side} pixels a side", field="post.upscale")
