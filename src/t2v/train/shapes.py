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
TEMPLATES = (
    "a {color} {shape} moving {d0}",
    "{color} {shape} going {d1}",
    "a {shape}, {color}, moves {d2}",
    "the {color} {shape} travels {d1}",
    "a {color} {shape} sliding {d0}",
    "{color} {shape} moving {d2}",
)


@dataclass(frozen=True)
class WorldConfig:
    """Clip geometry. Sizes are in pixels of a ``size`` x ``size`` frame."""

    size: int = 64
    frames: int = 8
    fps: int = 8
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

    @property
    def combo(self) -> tuple[str, str, str]:
        return (self.color, self.shape, self.direction)

    def to_dict(self) -> dict:
        return asdict(self)


def caption(color: str, shape: str, direction: str, variant: int = 0) -> str:
    """One of the caption paraphrases (``variant`` picks the template)."""
    words = _DIR_WORDS[direction]
    return TEMPLATES[variant % len(TEMPLATES)].format(color=color, shape=shape, d0=words[0], d1=words[1], d2=words[2])


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


def sample_label(rng: np.random.Generator, combo: tuple[str, str, str], config: WorldConfig = WorldConfig()) -> Label:
    """A random placement of ``combo`` whose whole path stays inside the frame."""
    color, shape, direction = combo
    n = config.size
    radius = rng.uniform(config.min_radius, config.max_radius) * n
    travel = rng.uniform(config.min_travel, config.max_travel) * n
    margin = radius * 1.3 + 1
    along_lo, along_hi = margin, n - margin - travel  # start coordinate along the motion axis
    along = rng.uniform(along_lo, along_hi)
    if direction in ("left", "up"):
        along = n - along  # start on the far side and move back
    across = rng.uniform(margin, n - margin)
    x0, y0 = (along, across) if direction in ("left", "right") else (across, along)
    return Label(color, shape, direction, float(x0), float(y0), float(radius), float(travel))


@dataclass(frozen=True)
class Sample:
    frames: np.ndarray  # (F, H, W, 3) uint8
    caption: str
    label: Label


def sample(seed: int, index: int, pool: list[tuple[str, str, str]], config: WorldConfig = WorldConfig(),
           balanced: bool = False) -> Sample:
    """Clip ``index`` of the data set with ``seed`` drawn from the combinations in ``pool`` (at random, or with
    ``balanced`` in turn, so every combination and colour comes equally often)."""
    rng = np.random.default_rng([seed, index])
    pick = int(rng.integers(len(pool)))
    combo = pool[index % len(pool)] if balanced else pool[pick]
    label = sample_label(rng, combo, config)
    text = caption(*combo, variant=int(rng.integers(len(TEMPLATES))))
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
