"""Temporal deflicker of decoded frames.

Diffusion video models often let a clip's brightness or colour balance jump from frame to frame.
``deflicker(frames, window=5)`` measures each frame's per-channel mean and standard deviation, smooths each
series over time (a centred running mean of ``window`` frames applied twice, i.e. a triangular kernel
``2 * window - 1`` frames wide; past the clip's ends the series is continued by the line fitted to its
first/last ``window`` values) and maps every channel of every frame linearly onto the smoothed statistics::

    out = (frame - mean_t) * (std_smooth / std_t) + mean_smooth

Frame-to-frame jitter is averaged away; a linear trend (a genuine fade) passes unchanged, at the clip's ends
too; a hard cut is softened over about ``2 * window`` frames. A steady clip has the same statistics before
and after smoothing, so its frames come back unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from t2v.errors import InvalidRequest
from typing import Any

from t2v.post.steps import PostStep
from t2v.requests import PostSpec

OnFrame = Callable[[int, int], None]

MAX_CONTRAST_GAIN = 4.0  # a flat frame (std ~0) is never stretched more than this
_EPS = 1e-6


def deflicker(
    frames: Sequence[np.ndarray],
    *,
    window: int = 5,
    on_frame: OnFrame | None = None,
) -> list[np.ndarray]:
    """Return ``frames`` (HxWx3 uint8 RGB) with per-frame brightness and colour drift smoothed over a
    centred temporal window of ``window`` frames (odd, >= 3; a median of per-channel mean and std).

    ``on_frame(done, total)`` is called after each frame."""
    window = check_window(window)
    arrays = [check_frame(f, i) for i, f in enumerate(frames)]
    total = len(arrays)
    if total == 0:
        return []
    means, stds = frame_stats(arrays)
    target_mean = _smooth(means, window)
    target_std = _smooth(stds, window)
    out: list[np.ndarray] = []
    for i, frame in enumerate(arrays):
        out.append(_remap(frame, means[i], stds[i], target_mean[i], target_std[i]))
        if on_frame is not None:
            on_frame(i + 1, total)
    return out


def check_window(window: object) -> int:
    """``window`` as an odd int >= 3, else :class:`InvalidRequest` naming the nearest valid one."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer, float)) or not np.isfinite(window):
        raise InvalidRequest(f"deflicker window must be an odd number of frames >= 3, not {window!r}",
                             field="deflicker_window")
    if window != int(window) or window < 3 or int(window) % 2 == 0:
        nearest = max(3, int(round(float(window))))
        if nearest % 2 == 0:
            nearest += 1
        raise InvalidRequest(
            f"deflicker window must be an odd number of frames >= 3, not {window!r} (nearest valid: {nearest})",
            field="deflicker_window",
        )
    return int(window)


def frame_stats(frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame, per-channel mean and standard deviation, each an (N, 3) float64 array."""
    means = np.empty((len(frames), 3))
    stds = np.empty((len(frames), 3))
    for i, frame in enumerate(frames):
        flat = frame.reshape(-1, 3).astype(np.float32)
        means[i] = flat.mean(axis=0, dtype=np.float64)
        stds[i] = flat.std(axis=0, dtype=np.float64)
    return means, stds


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Each column of ``values`` (N, k) smoothed twice with a centred running mean of ``window`` frames (a
    triangular kernel ``2 * window - 1`` frames wide). Beyond the clip's ends the series is continued by the
    least-squares line through its first / last ``window`` values, so a linear trend (a fade) comes out
    exactly as it went in, at the ends too, while frame-to-frame jitter is averaged away."""
    n = len(values)
    if n < 2:
        return values.copy()
    pad = 2 * (window // 2)
    k = min(window, n)
    t = np.arange(k, dtype=np.float64)
    head = np.polyfit(t, values[:k], 1)  # (2, cols): slope, intercept
    tail = np.polyfit(t, values[n - k:], 1)
    before = np.arange(-pad, 0, dtype=np.float64)[:, None] * head[0] + head[1]
    after = (k - 1 + np.arange(1, pad + 1, dtype=np.float64))[:, None] * tail[0] + tail[1]
    series = np.concatenate([before, values, after])
    kernel = np.ones(window) / window
    for _ in range(2):
        series = np.stack([np.convolve(series[:, c], kernel, mode="valid") for c in range(series.shape[1])], 1)
    return series

def _remap(frame: np.ndarray, mean: np.ndarray, std: np.ndarray, t_mean: np.ndarray, t_std: np.ndarray) -> np.ndarray:
    if np.allclose(mean, t_mean, atol=1e-3) and np.allclose(std, t_std, atol=1e-3):
        return frame.copy()
    gain = np.where(std > _EPS, t_std / np.maximum(std, _EPS), 1.0)
    gain = np.clip(gain, 1.0 / MAX_CONTRAST_GAIN, MAX_CONTRAST_GAIN)
    offset = t_mean - mean * gain
    # a 256-entry lookup table per channel: exact same mapping as the float formula, much cheaper per pixel
    levels = np.arange(256, dtype=np.float64)[:, None]
    lut = np.clip(np.rint(levels * gain + offset), 0, 255).astype(np.uint8)  # (256, 3)
    out = np.empty_like(frame)
    for c in range(3):
        out[..., c] = lut[:, c][frame[..., c]]
    return out


def check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    """``frame`` as an HxWx3 uint8 RGB array; InvalidRequest naming ``frames`` otherwise."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InvalidRequest(
            f"frame {index} must be an HxWx3 uint8 RGB array, not {frame.dtype} {frame.shape}", field="frames"
        )
    return frame


class DeflickerStep(PostStep):
    """Smooth frame-to-frame brightness and colour drift (``post.deflicker``)."""

    name = "deflicker"

    def params(self, spec: PostSpec, fps: float) -> dict[str, Any] | None:
        return {} if spec.deflicker else None

    def apply(self, frames, params, fps, on_frame):
        return deflicker(frames, on_frame=on_frame), fps


DEFLICKER = DeflickerStep()
