"""Frame interpolation: a moving square must move (one square at the midpoint), not cross-fade."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.extras import install_hint
from t2v.post.interpolate import DEFAULT_METHOD, METHODS, factor_for_fps, interpolate

cv2 = pytest.importorskip("cv2")

SIZE, STEP, SIDE, X0, Y0 = 96, 8, 16, 12, 40  # 96x96 frames, a 16 px white square moving 8 px/frame


def square_clip(n: int = 4, step: int = STEP) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        img[Y0:Y0 + SIDE, X0 + i * step:X0 + i * step + SIDE] = 255
        frames.append(img)
    return frames


def squares(img: np.ndarray) -> tuple[int, list[int], np.ndarray]:
    """Connected components after thresholding at 64, so half-bright ghosts count: (count, areas, centroids)."""
    mask = (img.max(axis=2) > 64).astype(np.uint8)
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask)
    return count - 1, stats[1:, cv2.CC_STAT_AREA].tolist(), centroids[1:]


def one_square_at(img: np.ndarray, cx: float, cy: float) -> bool:
    count, areas, centroids = squares(img)
    return (count == 1 and abs(areas[0] - SIDE * SIDE) <= 0.15 * SIDE * SIDE
            and float(np.hypot(centroids[0][0] - cx, centroids[0][1] - cy)) <= 1.5)


def test_methods_and_default():
    assert METHODS == ("flow", "minterpolate", "blend")
    assert DEFAULT_METHOD in ("flow", "minterpolate")


@pytest.mark.parametrize("method", ["flow", "minterpolate"])
def test_middle_frame_holds_one_square_at_the_midpoint(method):
    frames = square_clip()
    out = interpolate(frames, 2, method=method, fps=8)
    centre_y = Y0 + (SIDE - 1) / 2
    for i in range(len(frames) - 1):  # every inserted frame, the middle interval included
        mid = X0 + (i + 0.5) * STEP + (SIDE - 1) / 2
        assert one_square_at(out[2 * i + 1], mid, centre_y), (method, i, squares(out[2 * i + 1])[:2])
    # factor 4: the inserted frames of the middle interval sit at 1/4, 1/2 and 3/4 of the way
    out4 = interpolate(frames, 4, method=method, fps=8)
    for k in (1, 2, 3):
        x = X0 + (1 + k / 4) * STEP + (SIDE - 1) / 2
        assert one_square_at(out4[4 + k], x, centre_y), (method, k, squares(out4[4 + k])[:2])


def test_blend_ghosts_and_fails_the_same_check():
    frames = square_clip()
    out = interpolate(frames, 2, method="blend")
    mid_frame = out[3]
    assert not one_square_at(mid_frame, X0 + 1.5 * STEP + (SIDE - 1) / 2, Y0 + (SIDE - 1) / 2)
    # the two half-bright copies: a strip of a's square and one of b's at about half brightness
    half = (mid_frame[..., 0] > 64) & (mid_frame[..., 0] < 192)
    assert half.sum() == 2 * STEP * SIDE
    # with no overlap the two ghosts are two separate squares
    apart = interpolate(square_clip(2, step=32), 2, method="blend")[1]
    assert squares(apart)[0] == 2


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_frame_count_and_originals_kept(method, factor):
    frames = square_clip(3)
    out = interpolate(frames, factor, method=method, fps=8)
    assert len(out) == (len(frames) - 1) * factor + 1
    for i, f in enumerate(frames):
        assert np.array_equal(out[i * factor], f)
        assert out[i * factor] is not f
    assert all(o.shape == (SIZE, SIZE, 3) and o.dtype == np.uint8 for o in out)


@pytest.mark.parametrize("method", METHODS)
def test_static_clip_stays_static(method):
    rng = np.random.default_rng(0)
    still = cv2.GaussianBlur(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), (5, 5), 0)
    out = interpolate([still] * 3, 3, method=method, fps=8)
    assert len(out) == 7
    # minterpolate goes through YUV, so allow a rounding step or two; the others are exact
    tol = 3 if method == "minterpolate" else 0
    for o in out:
        assert np.abs(o.astype(int) - still.astype(int)).max() <= tol


def test_short_clips_come_back_as_copies():
    one = square_clip(1)
    out = interpolate(one, 4)
    assert len(out) == 1 and np.array_equal(out[0], one[0]) and out[0] is not one[0]
    assert interpolate([], 2) == []


def test_progress_reports_every_output_frame():
    seen = []
    out = interpolate(square_clip(3), 3, method="blend", on_frame=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 7) for i in range(1, 8)] and len(out) == 7


@pytest.mark.parametrize("factor, nearest", [(1, 2), (0, 2), (9, 8), (16, 8)])
def test_bad_factor_names_the_field_and_the_nearest_value(factor, nearest):
    with pytest.raises(InvalidRequest) as e:
        interpolate(square_clip(2), factor)
    assert e.value.field == "interpolate"
    assert str(e.value).startswith("interpolate: ") and f"nearest: {nearest}" in str(e.value)
    assert "2..8" in str(e.value)


def test_bad_method_lists_the_valid_ones():
    with pytest.raises(InvalidRequest) as e:
        interpolate(square_clip(2), 2, method="film")
    assert e.value.field == "interpolation"
    assert "'film'" in str(e.value) and "flow, minterpolate, blend, rife" in str(e.value)


def test_factor_for_fps():
    assert factor_for_fps(8, 16) == 2
    assert factor_for_fps(8, 24) == 3
    assert factor_for_fps(12.5, 50) == 4
    assert factor_for_fps(8, 64) == 8


@pytest.mark.parametrize("fps, target, message", [
    (8, 20, "target_fps: 20 is not a whole multiple of the clip's 8 fps; nearest: 16 or 24"),
    (8, 17, "target_fps: 17 is not a whole multiple of the clip's 8 fps; nearest: 16"),
    (8, 8, "target_fps: 8 is less than 2x the clip's 8 fps; nearest: 16"),
    (8, 100, "target_fps: 100 is more than 8x the clip's 8 fps; nearest: 64"),
])
def test_factor_for_fps_names_the_nearest_valid_target(fps, target, message):
    with pytest.raises(InvalidRequest) as e:
        factor_for_fps(fps, target)
    assert e.value.field == "target_fps"
    assert str(e.value).startswith(message)


def test_flow_without_opencv_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(InvalidRequest) as e:
        interpolate(square_clip(2), 2, method="flow")
    assert e.value.field == "interpolation"
    assert install_hint("post") in str(e.value) and "minterpolate" in str(e.value)
    # the other methods do not need it
    assert len(interpolate(square_clip(2), 2, method="minterpolate")) == 3
