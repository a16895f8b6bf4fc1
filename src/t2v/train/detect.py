"""A simple detector for shapes-world clips: object mask, mean colour, centroid track, fill ratio.

It is what ``t2v eval shapes`` scores generated clips with, and the data-set tests check that it
agrees with the labels of rendered clips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from t2v.train.shapes import ALL_COLORS, BACKGROUND, COLORS

# Fill ratio (mask area / bounding-box area): square ~1.0, circle ~pi/4, triangle ~0.5.
_FILL_SQUARE = 0.89
_FILL_TRIANGLE = 0.64
MIN_TRAVEL_PX = 0.06  # of the frame side: less than this is "no motion"


@dataclass(frozen=True)
class Detection:
    color: str | None
    shape: str | None
    direction: str | None
    mean_rgb: tuple[float, float, float]
    fill: float
    dx: float  # centroid displacement over the clip, pixels
    dy: float
    visible_frames: int

    def to_dict(self) -> dict:
        return asdict(self)


def _mask(frame: np.ndarray) -> np.ndarray:
    """Pixels clearly brighter than the background: over half the way to the frame's brightest."""
    lum = frame.astype(np.float32).max(axis=-1)
    bg = float(max(BACKGROUND))
    peak = float(lum.max())
    if peak - bg < 40:
        return np.zeros(lum.shape, dtype=bool)
    return lum > bg + 0.5 * (peak - bg)


def classify_color(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]] = COLORS) -> str:
    """Nearest palette colour after scaling both to unit brightness (robust to dim, blurry output)."""
    v = np.asarray(rgb, dtype=np.float64)
    v = v / max(float(v.max()), 1.0)
    best, dist = "", np.inf
    for name, ref in palette.items():
        r = np.asarray(ref, dtype=np.float64)
        d = float(np.sum((v - r / r.max()) ** 2))
        if d < dist:
            best, dist = name, d
    return best


def classify_shape(fill: float) -> str:
    if fill >= _FILL_SQUARE:
        return "square"
    if fill <= _FILL_TRIANGLE:
        return "triangle"
    return "circle"


def detect(frames: np.ndarray, palette: dict[str, tuple[int, int, int]] | None = None) -> Detection:
    """Detect the object in a (F, H, W, 3) uint8 clip. Fields are None where nothing was found."""
    palette = palette or COLORS
    side = frames.shape[2]
    centroids, fills, colors = [], [], []
    for frame in frames:
        mask = _mask(frame)
        if mask.sum() < 4:
            continue
        ys, xs = np.nonzero(mask)
        centroids.append((xs.mean(), ys.mean()))
        box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
        fills.append(mask.sum() / box)
        colors.append(frame[mask].astype(np.float64).mean(axis=0))
    if not centroids:
        return Detection(None, None, None, (0.0, 0.0, 0.0), 0.0, 0.0, 0.0, 0)
    mean_rgb = np.mean(colors, axis=0)
    fill = float(np.median(fills))
    track = np.asarray(centroids)
    if len(track) >= 2:  # least-squares slope over the visible frames x (number of steps)
        t = np.arange(len(track), dtype=np.float64)
        slope = np.polyfit(t, track, 1)[0] * (len(track) - 1)
        dx, dy = float(slope[0]), float(slope[1])
    else:
        dx = dy = 0.0
    if max(abs(dx), abs(dy)) < MIN_TRAVEL_PX * side:
        direction = None
    elif abs(dx) >= abs(dy):
        direction = "right" if dx > 0 else "left"
    else:
        direction = "down" if dy > 0 else "up"
    return Detection(classify_color(mean_rgb, palette), classify_shape(fill), direction,
                     tuple(float(c) for c in mean_rgb), fill, dx, dy, len(centroids))


def palette_for(colors: list[str] | tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """The base palette plus any extra colours named in ``colors`` (e.g. "purple" for a LoRA)."""
    return {**COLORS, **{c: ALL_COLORS[c] for c in colors if c in ALL_COLORS}}
