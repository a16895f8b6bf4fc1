"""A simple detector for shapes-world clips: object mask, mean colour, centroid track, fill ratio.

It is what ``t2v eval shapes`` scores generated clips with, and the data-set tests check that it
agrees with the labels of rendered clips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from t2v.train.shapes import ALL_COLORS, BACKGROUND, COLORS, SIZE_RADIUS, SPEED_TRAVEL

# Fill ratio (mask area / bounding-box area): square ~1.0, circle ~pi/4, triangle ~0.5.
_FILL_SQUARE = 0.89
_FILL_TRIANGLE = 0.64
MIN_TRAVEL_PX = 0.06  # of the frame side: less than this is "no motion"
_LUMA = np.array([0.299, 0.587, 0.114])  # Rec. 601 luma weights
# Size and speed (t2v.train.shapes.SIZE_RADIUS / SPEED_TRAVEL): the object's equivalent radius (from its mask
# area and shape) and the distance it covers, as fractions of the side; the cuts lie half way between the words'
# ranges and the unmodified ones (radius 0.11-0.17, travel 0.35-0.50), which read as "normal".
_AREA_PER_R2 = {"circle": np.pi, "square": (2 * 0.88) ** 2, "triangle": 3 * np.sqrt(3) / 4 * 1.25 ** 2}
SIZE_CUTS = ((SIZE_RADIUS["small"][1] + 0.11) / 2, (0.17 + SIZE_RADIUS["big"][0]) / 2)
SPEED_CUTS = ((SPEED_TRAVEL["slowly"][1] + 0.35) / 2, (0.50 + SPEED_TRAVEL["quickly"][0]) / 2)


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
    # per frame (None where no object was found): what a clip-level reading averages away
    frame_colors: tuple[str | None, ...] = ()
    frame_shapes: tuple[str | None, ...] = ()
    track: tuple[tuple[float, float] | None, ...] = ()  # mask centroid (x, y), pixels
    brightness: tuple[float | None, ...] = ()  # the object's mean luma (0-255)
    radius: float = 0.0  # equivalent radius (median over frames), fraction of the side
    size: str | None = None  # "small", "normal" or "big" (SIZE_CUTS)
    speed: str | None = None  # "slowly", "normal" or "quickly" (SPEED_CUTS), from the distance covered

    def to_dict(self) -> dict:
        return asdict(self)


def object_mask(frame: np.ndarray) -> np.ndarray:
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


def classify_size(radius: float) -> str:
    return "small" if radius < SIZE_CUTS[0] else "big" if radius > SIZE_CUTS[1] else "normal"


def classify_speed(travel: float) -> str:
    return "slowly" if travel < SPEED_CUTS[0] else "quickly" if travel > SPEED_CUTS[1] else "normal"


def detect(frames: np.ndarray, palette: dict[str, tuple[int, int, int]] | None = None) -> Detection:
    """Detect the object in a (F, H, W, 3) uint8 clip. Fields are None where nothing was found."""
    palette = palette or COLORS
    side = frames.shape[2]
    centroids, fills, colors, areas = [], [], [], []
    per_color, per_shape, per_track, per_luma = [], [], [], []
    for frame in frames:
        mask = object_mask(frame)
        if mask.sum() < 4:
            per_color.append(None), per_shape.append(None), per_track.append(None), per_luma.append(None)
            continue
        ys, xs = np.nonzero(mask)
        centroids.append((xs.mean(), ys.mean()))
        box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
        fills.append(mask.sum() / box)
        areas.append(float(mask.sum()))
        rgb = frame[mask].astype(np.float64).mean(axis=0)
        colors.append(rgb)
        per_color.append(classify_color(rgb, palette))
        per_shape.append(classify_shape(float(fills[-1])))
        per_track.append((round(float(xs.mean()), 3), round(float(ys.mean()), 3)))
        per_luma.append(round(float(rgb @ _LUMA), 3))
    frame_fields = {"frame_colors": tuple(per_color), "frame_shapes": tuple(per_shape), "track": tuple(per_track),
                    "brightness": tuple(per_luma)}
    if not centroids:
        return Detection(None, None, None, (0.0, 0.0, 0.0), 0.0, 0.0, 0.0, 0, **frame_fields)
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
    shape = classify_shape(fill)
    radius = float(np.sqrt(np.median(areas) / _AREA_PER_R2[shape])) / side
    speed = classify_speed(max(abs(dx), abs(dy)) / side)
    return Detection(classify_color(mean_rgb, palette), shape, direction,
                     tuple(float(c) for c in mean_rgb), fill, dx, dy, len(centroids), **frame_fields,
                     radius=round(radius, 4), size=classify_size(radius), speed=speed)


def palette_for(colors: list[str] | tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """The base palette plus any extra colours named in ``colors`` (e.g. "purple" for a LoRA)."""
    return {**COLORS, **{c: ALL_COLORS[c] for c in colors if c in ALL_COLORS}}


# Per-frame scoring. The thresholds are the detector's noise on rendered clips (tests/train/test_shapes.py
# checks that every rendered clip passes): on 1,000 of them the object's mean luma changed between frames by
# at most 6.5% of its clip mean (anti-aliased edges entering the mask as it moves; 3.6% for all colours but
# blue), and no step deviated from the clip's mean step by more than 0.9 px.
FLICKER_NOISE = 0.07  # largest frame-to-frame change of the object's luma, as a share of its clip mean
JUMP_PX = 4.0
_AXIS = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}


def frame_scores(d: Detection, color: str, shape: str, direction: str) -> dict:
    """How a clip holds up frame by frame against what was asked for: ``color_stable`` (every frame reads
    ``color``), ``shape_stable`` (every frame reads ``shape``), ``track_ok`` (the object is in every frame,
    every step moves the asked way along its axis, and no step jumps: deviates from the clip's mean step by
    more than max(JUMP_PX, the mean step's length)), ``flicker`` (the largest frame-to-frame change of the
    object's luma, as a share of its mean over the clip) and ``flicker_ok`` (the object is in every frame and
    flicker is at most FLICKER_NOISE)."""
    seen = [p is not None for p in d.track]
    whole = bool(seen) and all(seen)
    track_ok = False
    if whole and len(d.track) >= 2:
        pts = np.asarray(d.track, dtype=np.float64)
        steps = np.diff(pts, axis=0)
        axis, sign = _AXIS[direction]
        mean = (pts[-1] - pts[0]) / len(steps)
        dev = np.linalg.norm(steps - mean, axis=1)
        track_ok = bool(np.all(sign * steps[:, axis] > 0) and np.all(dev <= max(JUMP_PX, float(np.linalg.norm(mean)))))
    luma = [b for b in d.brightness if b is not None]
    flicker = round(float(np.max(np.abs(np.diff(luma))) / max(np.mean(luma), 1.0)), 4) if len(luma) >= 2 else None
    return {"color_stable": whole and all(c == color for c in d.frame_colors),
            "shape_stable": whole and all(s == shape for s in d.frame_shapes),
            "track_ok": track_ok, "flicker": flicker, "flicker_ok": whole and flicker is not None and flicker <= FLICKER_NOISE}
