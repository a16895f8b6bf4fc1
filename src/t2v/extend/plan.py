"""Longer videos, planned: which segments make the frames asked for, each one's prompt and seed, and how the
seams are joined.

A segment is one run of the model (``num_frames`` frames). The first one (without a clip to extend) is text-
(or image-) to-video; every later one *continues* what came before:

- **image** continuation (a model that does image-to-video): the last frame so far is the new segment's first
  frame; the two are cross-faded (overlap 1 by default);
- **video** continuation (a model whose VAE encodes video: the UNet3D models and the rest): SDEdit of a guide
  clip, the last ``overlap`` frames so far and then the last frame held, noised to ``continue_strength``'s step
  and denoised with the segment's prompt. The new segment's first ``overlap`` frames redo the old ones, so the
  two are cross-faded there, weights moving linearly from the old frames to the new.

Frame indices in a prompt schedule and ``seconds`` count *new* frames: after the clip, when extending one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from t2v.errors import InvalidRequest

MAX_SEGMENTS = 64
MAX_CLIP_FRAMES = 2048
DEFAULT_CONTINUE_STRENGTH = 0.7  # on t2v-shapes: 0.8 redraws the shape at its start, 0.7 keeps it moving
CONTINUATIONS = ("image", "video")


@dataclass(frozen=True)
class Segment:
    """One run of the model: ``kind`` is text, image (the request's input image), or the continuation (image
    or video); its frames start at output frame ``start``, the first ``overlap`` of them blended into the
    frames before."""

    index: int
    kind: str
    start: int
    overlap: int
    prompt: str
    seed: int

    def to_dict(self, num_frames: int, strength: float | None) -> dict:
        out = {"index": self.index, "kind": self.kind, "prompt": self.prompt, "seed": self.seed,
               "frames": [self.start, self.start + num_frames], "overlap": self.overlap}
        if self.kind == "video":
            out["strength"] = strength
        return out


@dataclass(frozen=True)
class LongPlan:
    segments: tuple[Segment, ...]
    clip_frames: int
    new_frames: int
    continuation: str
    overlap: int
    strength: float | None  # video continuation's

    @property
    def total(self) -> int:
        return self.clip_frames + self.new_frames


def continuation_kind(modes: tuple[str, ...], encodes_video: bool) -> str | None:
    """How a model with these request ``modes`` continues a clip: image-to-video from the last frame where it
    has that mode, else video-to-video where its VAE encodes video; None: it cannot."""
    if "i2v" in modes:
        return "image"
    return "video" if encodes_video else None


def check_continues(modes: tuple[str, ...], encodes_video: bool, *, model: str, family: str, able: list[str]) -> None:
    """Refuse a longer video from a model that cannot continue a clip (InvalidRequest naming ``seconds``)."""
    if continuation_kind(modes, encodes_video) is None:
        raise InvalidRequest(f"seconds: {model} ({family}) cannot continue a clip (neither image-to-video nor a VAE "
                             f"that encodes video); longer videos work with the {', '.join(able)} families",
                             field="seconds")


def new_frame_count(request, overlap: int) -> int:
    """The frames to make (after the clip, when extending): ``seconds`` at the request's fps; else one segment
    past the prompt schedule's last entry; else (extend alone) one continuation."""
    if request.seconds is not None:
        return max(1, round(request.seconds * request.fps))
    if request.prompt_schedule:
        return request.prompt_schedule[-1][0] + request.num_frames
    return request.num_frames - overlap


def default_overlap(request, continuation: str) -> int:
    if request.overlap is not None:
        return request.overlap
    return 1 if continuation == "image" else max(1, request.num_frames // 2)


def prompt_at(request, frame: int) -> str:
    """The prompt in force at new frame ``frame``: the last schedule entry at or before it, else ``prompt``."""
    prompt = request.prompt
    for start, p in request.prompt_schedule or ():
        if start > frame:
            break
        prompt = p
    return prompt


def plan_segments(request, *, clip_frames: int, continuation: str) -> LongPlan:
    """The segments of a resolved long request (InvalidRequest for an overlap that leaves no new frame, or
    more than :data:`MAX_SEGMENTS` segments)."""
    n = request.num_frames
    overlap = default_overlap(request, continuation)
    if overlap >= n:
        raise InvalidRequest(f"overlap: {overlap} frames leave no new frame in a segment of {n}; nearest valid: "
                             f"{max(1, n - 1)}", field="overlap")
    new = new_frame_count(request, overlap)
    step = n - overlap
    count = (0 if clip_frames else 1) + math.ceil(max(0, new - (0 if clip_frames else n)) / step)
    if count > MAX_SEGMENTS:
        most = ((MAX_SEGMENTS - (0 if clip_frames else 1)) * step + (0 if clip_frames else n)) / request.fps
        raise InvalidRequest(f"seconds: {new} new frames take {count} segments of {n} frames (overlap {overlap}), over "
                             f"the limit of {MAX_SEGMENTS}; at most {most:g} seconds at {request.fps:g} fps",
                             field="seconds")
    segments, length = [], clip_frames
    for k in range(count):
        first = k == 0 and not clip_frames
        start = 0 if first else length - overlap
        kind = ("image" if request.image else "text") if first else continuation
        segments.append(Segment(index=k, kind=kind, start=start, overlap=0 if first else overlap,
                                prompt=prompt_at(request, length - clip_frames), seed=request.seed + k))
        length = start + n
    strength = (request.continue_strength or DEFAULT_CONTINUE_STRENGTH) if continuation == "video" else None
    return LongPlan(tuple(segments), clip_frames, new, continuation, overlap, strength)


def join(frames: np.ndarray, new: np.ndarray, overlap: int) -> np.ndarray:
    """``frames`` then ``new``, whose first ``overlap`` frames redo ``frames``' last ones: those are cross-faded,
    the weight of the new frames rising linearly (k / (overlap + 1)) so neither side's frames jump."""
    if len(frames) == 0 or overlap == 0:
        return np.concatenate([frames, new]) if len(frames) else new.copy()
    o = min(overlap, len(frames), len(new))
    w = (np.arange(1, o + 1, dtype=np.float32) / (o + 1))[:, None, None, None]
    seam = (frames[-o:].astype(np.float32) * (1 - w) + new[:o].astype(np.float32) * w).round().astype(np.uint8)
    return np.concatenate([frames[:-o], seam, new[o:]])


def guide(frames: np.ndarray, overlap: int, num_frames: int) -> np.ndarray:
    """A video continuation's input clip: the last ``overlap`` frames, then the last frame held to
    ``num_frames``."""
    tail = frames[-overlap:]
    hold = np.repeat(frames[-1:], num_frames - len(tail), axis=0)
    return np.concatenate([tail, hold])
