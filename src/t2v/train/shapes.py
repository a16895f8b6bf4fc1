"""The synthetic "shapes" world: one coloured shape moving on a near-black background.

Everything is deterministic from a seed: clip ``i`` of a data set with seed ``s`` is drawn from
``numpy.random.default_rng([s, i])``. A fixed set of colour x shape x direction combinations is
held out of training (:data:`HELDOUT`) so evaluation can tell memorising from composing.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from t2v.export.writers import write_video

# Saturated, clearly distinct hues (RGB 0-255). "purple" is not in the base world: it is the
# colour the LoRA demo teaches (``t2v train-lora``).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 245),
    "yellow": (240, 220, 40),
    "white": (240, 240, 240),
}
EXTRA_COLORS: dict[str, tuple[int, int, int]] = {"purple": (160, 50, 230)}
ALL_COLORS = {**COLORS, **EXTRA_COLORS}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
BACKGROUND = (10, 10, 14)

# 10 of the 60 combinations (16.7%); every colour, shape and direction still appears in training.
HELDOUT: frozenset[tuple[str, str, str]] = frozenset({
    ("red", "square", "up"), ("red", "circle", "left"),
    ("green", "triangle", "left"), ("green", "square", "down"),
    ("blue", "circle", "down"), ("blue", "triangle", "right"),
    ("yellow", "square", "right"), ("yellow", "circle", "up"),
    ("white", "triangle", "up"), ("white", "square", "left"),
})

_DIR_WORDS = {  # direction -> phrasings used by the caption templates
    "left": ("left", "to the left", "leftwards"),
    "right": ("right", "to the right", "rightwards"),
    "up": ("up", "upwards", "upwards"),
    "down": ("down", "downwards", "downwards"),
}
TEMPLATES = (  # {size} is "" or "small " / "big "; {speed} is "" or " slowly" / " quickly"
    "a {size}{color} {shape} moving {d0}{speed}",
    "{size}{color} {shape} going {d1}{speed}",
    "a {size}{shape}, {color}, moves {d2}{speed}",
    "the {size}{color} {shape} travels {d1}{speed}",
    "a {size}{color} {shape} sliding {d0}{speed}",
    "{size}{color} {shape} moving {d2}{speed}",
)

# The richer world: a clip may also ask for a size and/or a speed. A word picks its range (size: the object's
# half-extent, speed: the distance covered over the clip, both as fractions of the frame side); no word keeps
# WorldConfig's ranges, so a clip without one is drawn exactly as before the words existed. A big object has no
# room in the frame to go quickly, so that pair is not in the world (MODIFIER_PAIRS).
SIZE_RADIUS: dict[str, tuple[float, float]] = {"small": (0.065, 0.085), "big": (0.20, 0.23)}
SPEED_TRAVEL: dict[str, tuple[float, float]] = {"slowly": (0.12, 0.20), "quickly": (0.56, 0.62)}
SIZES, SPEEDS = tuple(SIZE_RADIUS), tuple(SPEED_TRAVEL)
MODIFIER_PAIRS: tuple[tuple[str | None, str | None], ...] = tuple(
    (z, v) for z in (None, *SIZES) for v in (None, *SPEEDS) if (z or v) and (z, v) != ("big", "quickly"))
_EXTENT = {"circle": 1.0, "square": 0.88, "triangle": 1.25}  # largest half-extent from the centre, in radii


@dataclass(frozen=True)
class WorldConfig:
    """Clip geometry. Sizes are in pixels of a ``size`` x ``size`` frame."""

    size: int = 64
    frames: int = 8
    fps: int = 8
    modifiers: float = 0.0  # share of clips that also ask for a size and/or a speed (MODIFIER_PAIRS)
    min_radius: float = 0.11  # object half-extent as a fraction of the frame side
    max_radius: float = 0.17
    min_travel: float = 0.35  # distance covered over the clip, fraction of the side (>= 1/4)
    max_travel: float = 0.50
    supersample: int = 4


@dataclass(frozen=True)
class Label:
    color: str
    shape: str
    direction: str
    x0: float  # start centre (pixels)
    y0: float
    radius: float
    travel: float
    size_word: str | None = None  # "small" / "big" when the caption asks for a size
    speed_word: str | None = None  # "slowly" / "quickly" when it asks for a speed

    @property
    def combo(self) -> tuple[str, str, str]:
        return (self.color, self.shape, self.direction)

    def to_dict(self) -> dict:
        return asdict(self)


def caption(color: str, shape: str, direction: str, variant: int = 0, size: str | None = None,
            speed: str | None = None) -> str:
    """One of the caption paraphrases (``variant`` picks the template), with the size and speed words if given."""
    words = _DIR_WORDS[direction]
    return TEMPLATES[variant % len(TEMPLATES)].format(color=color, shape=shape, d0=words[0], d1=words[1], d2=words[2],
                                                      size=f"{size} " if size else "", speed=f" {speed}" if speed else "")


def combos(colors: tuple[str, ...] | None = None, split: str = "all") -> list[tuple[str, str, str]]:
    """Colour x shape x direction combinations of ``split`` ("train", "heldout" or "all")."""
    every = list(itertools.product(colors or tuple(COLORS), SHAPES, DIRECTIONS))
    if split == "train":
        return [c for c in every if c not in HELDOUT]
    if split == "heldout":
        return [c for c in every if c in HELDOUT]
    return every


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if shape == "square":
        s = r * 0.88  # about the circle's area
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":  # equilateral, pointing up, inscribed in a circle a bit larger than r
        R = r * 1.25
        return [(cx + R * np.cos(a), cy - R * np.sin(a)) for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3)]
    return None


def render(label: Label, config: WorldConfig = WorldConfig(), rgb: tuple[int, int, int] | None = None) -> np.ndarray:
    """The clip of ``label`` as (frames, size, size, 3) uint8 RGB, anti-aliased by supersampling.

    ``rgb`` overrides the colour the label names (the autoencoder's colour-variety frames use it)."""
    from PIL import Image, ImageDraw

    k, n = config.supersample, config.size
    rgb = rgb or ALL_COLORS[label.color]
    dx, dy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[label.direction]
    out = np.empty((config.frames, n, n, 3), dtype=np.uint8)
    for f in range(config.frames):
        t = f / max(config.frames - 1, 1)
        cx, cy = label.x0 + dx * label.travel * t, label.y0 + dy * label.travel * t
        img = Image.new("RGB", (n * k, n * k), BACKGROUND)
        draw = ImageDraw.Draw(img)
        poly = _polygon(label.shape, cx * k, cy * k, label.radius * k)
        if poly is None:
            r = label.radius * k
            draw.ellipse([cx * k - r, cy * k - r, cx * k + r, cy * k + r], fill=rgb)
        else:
            draw.polygon(poly, fill=rgb)
        out[f] = np.asarray(img.resize((n, n), Image.BOX))
    return out


def _modified_geometry(rng: np.random.Generator, shape: str, size: str | None, speed: str | None,
                       config: WorldConfig) -> tuple[float, float, float]:
    """Radius, travel and margin (pixels) for a clip that asks for a size and/or speed: the radius is capped so
    the slowest travel of the range fits, then the travel is capped by the room the radius leaves."""
    n, k = config.size, _EXTENT[shape]
    r_lo, r_hi = SIZE_RADIUS[size] if size else (config.min_radius, config.max_radius)
    t_lo, t_hi = SPEED_TRAVEL[speed] if speed else (config.min_travel, config.max_travel)
    r_hi = min(r_hi, (1 - t_lo - 2.5 / n) / (2 * k))
    if r_hi < r_lo:
        raise ValueError(f"a {size} object has no room to move {speed} in a {n}-pixel frame")
    radius = rng.uniform(r_lo, r_hi) * n
    margin = radius * k + 1
    travel = rng.uniform(t_lo, min(t_hi, (n - 2 * margin - 0.5) / n)) * n
    return radius, travel, margin


def sample_label(rng: np.random.Generator, combo: tuple[str, str, str], config: WorldConfig = WorldConfig(),
                 size: str | None = None, speed: str | None = None) -> Label:
    """A random placement of ``combo`` (with the ``size`` / ``speed`` words' ranges) whose whole path stays inside
    the frame."""
    color, shape, direction = combo
    n = config.size
    if size or speed:
        radius, travel, margin = _modified_geometry(rng, shape, size, speed, config)
    else:
        radius = rng.uniform(config.min_radius, config.max_radius) * n
        travel = rng.uniform(config.min_travel, config.max_travel) * n
        margin = radius * 1.3 + 1
    along_lo, along_hi = margin, n - margin - travel  # start coordinate along the motion axis
    along = rng.uniform(along_lo, along_hi)
    if direction in ("left", "up"):
        along = n - along  # start on the far side and move back
    across = rng.uniform(margin, n - margin)
    x0, y0 = (along, across) if direction in ("left", "right") else (across, along)
    return Label(color, shape, direction, float(x0), float(y0), float(radius), float(travel), size, speed)


@dataclass(frozen=True)
class Sample:
    frames: np.ndarray  # (F, H, W, 3) uint8
    caption: str
    label: Label


def sample(seed: int, index: int, pool: list[tuple[str, str, str]], config: WorldConfig = WorldConfig(),
           balanced: bool = False) -> Sample:
    """Clip ``index`` of the data set with ``seed`` drawn from the combinations in ``pool`` (at random, or with
    ``balanced`` in turn, so every combination and colour comes equally often); a share ``config.modifiers`` of
    clips also asks for a size and/or a speed."""
    rng = np.random.default_rng([seed, index])
    pick = int(rng.integers(len(pool)))
    combo = pool[index % len(pool)] if balanced else pool[pick]
    size = speed = None
    if config.modifiers > 0:  # its own stream: a world without modifiers draws exactly the clips it always did
        extra = np.random.default_rng([seed, index, 2])
        if extra.random() < config.modifiers:
            size, speed = MODIFIER_PAIRS[int(extra.integers(len(MODIFIER_PAIRS)))]
    label = sample_label(rng, combo, config, size, speed)
    text = caption(*combo, variant=int(rng.integers(len(TEMPLATES))), size=size, speed=speed)
    return Sample(render(label, config), text, label)


def random_rgb(rng: np.random.Generator) -> tuple[int, int, int]:
    """Any hue, mostly saturated and bright, sometimes grey: what a user's LoRA colour could be."""
    import colorsys

    if rng.random() < 0.1:
        v = int(rng.uniform(90, 250))
        return (v, v, v)
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.55, 1.0))
    return (int(r * 255), int(g * 255), int(b * 255))


def variety_frames(seed: int, count: int, config: WorldConfig = WorldConfig()) -> np.ndarray:
    """``count`` x 2 frames of random shapes in random colours, (N, size, size, 3) uint8.

    The autoencoder trains on these beside the data set so it can encode colours the five base ones
    are not (a LoRA that teaches "purple" needs a VAE that can draw purple)."""
    two = WorldConfig(**{**asdict(config), "frames": 2})
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, 7919, i])
        combo = (str(rng.choice(list(COLORS))), str(rng.choice(SHAPES)), str(rng.choice(DIRECTIONS)))
        out.append(render(sample_label(rng, combo, two), two, rgb=random_rgb(rng)))
    return np.concatenate(out) if out else np.empty((0, config.size, config.size, 3), np.uint8)


def iterate(seed: int, count: int, *, split: str = "train", colors: tuple[str, ...] | None = None,
            config: WorldConfig = WorldConfig(), balanced: bool = False) -> Iterator[Sample]:
    pool = combos(colors, split)
    for i in range(count):
        yield sample(seed, i, pool, config, balanced)


def write_dir(directory: str | Path, count: int, *, seed: int = 0, split: str = "train",
              colors: tuple[str, ...] | None = None, config: WorldConfig = WorldConfig(), balanced: bool = False) -> Path:
    """Write ``count`` clips as MP4 files + ``captions.jsonl`` (the format ``t2v train --data DIR`` reads)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, s in enumerate(iterate(seed, count, split=split, colors=colors, config=config, balanced=balanced)):
        name = f"clip_{i:05d}.mp4"
        write_video(s.frames, out / name, fps=config.fps, fmt="mp4", crf=12)
        lines.append(json.dumps({"file": name, "caption": s.caption, "label": s.label.to_dict()}))
    (out / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
