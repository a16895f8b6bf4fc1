"""t2v.post.deflicker: injected flicker is removed, a steady clip is untouched, a genuine fade is kept."""

from __future__ import annotations

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.post.deflicker import deflicker


def pattern(t: float, size: int = 96) -> np.ndarray:
    """A smooth colour pattern drifting with ``t``; its mean brightness is constant."""
    y, x = np.mgrid[0:size, 0:size] / size
    r = 0.5 + 0.35 * np.sin(2 * np.pi * (x + t))
    g = 0.5 + 0.35 * np.cos(2 * np.pi * (y - t))
    b = 0.5 + 0.25 * np.sin(2 * np.pi * (x + y + t))
    return (np.stack([r, g, b], -1) * 255).round().astype(np.uint8)


def brightness(frames) -> np.ndarray:
    return np.array([f.astype(np.float64).mean() for f in frames])


def test_injected_flicker_is_removed():
    rng = np.random.default_rng(0)
    clean = [pattern(i / 16) for i in range(16)]
    gains = 1 + rng.uniform(-0.15, 0.15, len(clean))  # random per-frame brightness gain, +-15%
    flicker = [np.clip(f * g, 0, 255).astype(np.uint8) for f, g in zip(clean, gains)]
    calls = []
    out = deflicker(flicker, on_frame=lambda done, total: calls.append((done, total)))
    assert len(out) == len(flicker) and all(o.shape == f.shape and o.dtype == np.uint8 for o, f in zip(out, flicker))
    before, after = np.var(brightness(flicker)), np.var(brightness(out))
    assert before / after > 5, (before, after)
    assert calls == [(i + 1, 16) for i in range(16)]


def test_colour_flicker_is_removed_per_channel():
    rng = np.random.default_rng(1)
    clean = [pattern(i / 16) for i in range(24)]
    flicker = [np.clip(f * (1 + rng.uniform(-0.1, 0.1, 3)), 0, 255).astype(np.uint8) for f in clean]
    out = deflicker(flicker)
    def channel_var(frames):  # variance over time of each channel's mean, summed over the channels
        return np.var([f.reshape(-1, 3).mean(0) for f in frames], axis=0).sum()

    assert channel_var(flicker) / channel_var(out) > 4, (channel_var(flicker), channel_var(out))


def test_steady_clip_is_unchanged():
    frames = [pattern(0.0)] * 12
    out = deflicker(frames)
    assert all(np.array_equal(o, f) for o, f in zip(out, frames))
    moving = [pattern(i / 12) for i in range(12)]  # constant brightness, moving content
    out = deflicker(moving)
    assert max(np.abs(o.astype(int) - f).max() for o, f in zip(out, moving)) <= 1
    assert np.allclose(brightness(out), brightness(moving), atol=0.5)


def test_slow_fade_is_preserved():
    base = pattern(0.0)
    fade = [np.clip(base * (0.5 + 0.5 * i / 15), 0, 255).astype(np.uint8) for i in range(16)]
    out = deflicker(fade)
    assert np.abs(brightness(out) - brightness(fade)).max() < 1.0
    ramp_in, ramp_out = brightness(fade), brightness(out)
    assert ramp_out[-1] - ramp_out[0] > 0.95 * (ramp_in[-1] - ramp_in[0])


def test_short_clips_and_empty():
    assert deflicker([]) == []
    one = [pattern(0.0)]
    assert np.array_equal(deflicker(one)[0], one[0])
    two = [pattern(0.0), np.clip(pattern(0.0) * 1.1, 0, 255).astype(np.uint8)]
    assert len(deflicker(two)) == 2


@pytest.mark.parametrize(("window", "nearest"), [(4, "5"), (1, "3"), (2.5, "3"), (8, "9")])
def test_bad_window_names_the_nearest_valid(window, nearest):
    with pytest.raises(InvalidRequest, match=f"nearest valid: {nearest}") as info:
        deflicker([pattern(0.0)] * 3, window=window)
    assert info.value.field == "deflicker_window"


def test_bad_frames():
    with pytest.raises(InvalidRequest) as info:
        deflicker([np.zeros((8, 8), np.uint8)])
    assert info.value.field == "frames"
