"""Training clips: the synthetic shapes world, or a user's folder of videos + ``captions.jsonl``.

Folder format (``t2v train --data DIR``)::

    DIR/captions.jsonl    one JSON object per line: {"file": "clip_0001.mp4", "caption": "a red circle moving right"}
    DIR/clip_0001.mp4     any format PyAV (or Pillow, for GIF) decodes; at least ``frames`` frames long

Clips are centre-cropped to a square, resized to the model's size, and ``frames`` frames are taken
evenly spaced from each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2v.errors import InvalidRequest
from t2v.train import shapes
from t2v.export.writers import decode_video


@dataclass
class ClipSet:
    pixels: np.ndarray  # (N, F, H, W, 3) uint8
    captions: list[list[str]]  # per clip: the captions to draw from (paraphrases)
    fps: int

    def __len__(self) -> int:
        return int(self.pixels.shape[0])


def shapes_clips(count: int, *, size: int, frames: int, seed: int = 0, colors: tuple[str, ...] | None = None,
                 split: str = "train", modifiers: float = 0.0) -> ClipSet:
    """``count`` shapes clips from ``split`` (a share ``modifiers`` also asking for a size and/or a speed); each
    keeps every caption paraphrase of its label."""
    config = shapes.WorldConfig(size=size, frames=frames, modifiers=modifiers)
    pixels = np.empty((count, frames, size, size, 3), dtype=np.uint8)
    captions = []
    for i, s in enumerate(shapes.iterate(seed, count, split=split, colors=colors, config=config)):
        pixels[i] = s.frames
        words = {"size": s.label.size_word, "speed": s.label.speed_word}
        captions.append([shapes.caption(*s.label.combo, variant=v, **words) for v in range(len(shapes.TEMPLATES))])
    return ClipSet(pixels, captions, config.fps)


def _fit(frames: np.ndarray, size: int, count: int) -> np.ndarray:
    from PIL import Image

    idx = np.linspace(0, frames.shape[0] - 1, count).round().astype(int)
    h, w = frames.shape[1:3]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    out = [np.asarray(Image.fromarray(frames[i, top : top + s, left : left + s]).resize((size, size), Image.BICUBIC))
           for i in idx]
    return np.stack(out)


def folder_clips(directory: str | Path, *, size: int, frames: int) -> ClipSet:
    """Read a user's folder (see the module docs). Errors name the file and line at fault."""
    root = Path(directory).expanduser()
    index = root / "captions.jsonl"
    if not index.is_file():
        raise InvalidRequest(f"data: {root} has no captions.jsonl (one JSON line per clip: file, caption)", field="data")
    pixels, captions, fps = [], [], []
    for n, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name, text = str(row["file"]), str(row["caption"]).strip()
        except (ValueError, KeyError, TypeError):
            raise InvalidRequest(f"data: {index} line {n} is not a JSON object with 'file' and 'caption'", field="data") from None
        if not text:
            raise InvalidRequest(f"data: {index} line {n} has an empty caption", field="data")
        path = root / name
        if not path.is_file():
            raise InvalidRequest(f"data: {index} line {n} names {name}, which does not exist", field="data")
        try:
            video, rate = decode_video(path)
        except Exception as e:
            raise InvalidRequest(f"data: could not decode {path}: {e}", field="data") from None
        if video.shape[0] < frames:
            raise InvalidRequest(f"data: {path} has {video.shape[0]} frames; training needs at least {frames}", field="data")
        pixels.append(_fit(video, size, frames))
        captions.append([text])
        fps.append(rate)
    if not pixels:
        raise InvalidRequest(f"data: {index} lists no clips", field="data")
    return ClipSet(np.stack(pixels), captions, int(round(float(np.median(fps)))))


def load_clips(data: str, *, size: int, frames: int, count: int, seed: int = 0, modifiers: float = 0.0) -> ClipSet:
    """``data`` is "shapes" (``count`` generated clips, a share ``modifiers`` with size / speed words) or a folder."""
    if data == "shapes":
        return shapes_clips(count, size=size, frames=frames, seed=seed, modifiers=modifiers)
    return folder_clips(data, size=size, frames=frames)


def load_clip_sets(data: str, *, size: int, frames: tuple[int, ...], count: int, seed: int = 0,
                   modifiers: float = 0.0) -> list[ClipSet]:
    """One ClipSet per clip length in ``frames``. Shapes data splits ``count`` among the lengths (the first gets
    any remainder; length k draws with seed + k, so a single length gives exactly :func:`load_clips`'s clips);
    a folder gives every clip at every length."""
    share = [count // len(frames) + (k < count % len(frames)) for k in range(len(frames))]
    return [load_clips(data, size=size, frames=f, count=n, seed=seed + k, modifiers=modifiers)
            for k, (f, n) in enumerate(zip(frames, share))]
