"""Reading a request's control inputs (VACE): the control video and mask video decoded and checked against the
output's size and frame count (or fitted to them with ``fit``), the mask made binary, the reference images
decoded; each file's sha256 for the record and the checkpoint fingerprint. All before any weights load."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from t2v.errors import InvalidRequest
from t2v.inputs import load_image, load_video

GREY = (32, 224)  # mask values strictly between these are neither black nor white
GREY_SHARE = 0.01  # a mask with more grey pixels than this (compression fringes aside) is refused without fit


@dataclass(frozen=True)
class ControlInputs:
    """What a VACE run is given: ``video`` (F, H, W, 3) uint8 at the output's size and length or None, ``mask``
    (F, H, W) uint8 of 0 (keep) and 1 (make) or None, ``references`` (RGB PIL images), and the files' hashes.
    Wan-Animate's: ``video`` is the pose video, ``face`` the face video (F frames at its own size), ``background``
    the scene of replace mode (at the output's size and length)."""

    video: np.ndarray | None
    mask: np.ndarray | None
    references: tuple[Any, ...]
    hashes: dict[str, Any]
    face: np.ndarray | None = None
    background: np.ndarray | None = None

    def fingerprint(self, fp: str) -> str:
        """A checkpoint fingerprint ``fp`` extended with the inputs' hashes: a checkpoint resumes only the run on
        the same bytes."""
        return hashlib.sha256(f"{fp}:control:{sorted(self.hashes.items())}".encode()).hexdigest()


def load_control(request, *, resolve_image: Callable[[str], Path] | None = None,
                 resolve_video: Callable[[str], Path] | None = None) -> ControlInputs | None:
    """The control inputs of a resolved ``request`` (width, height and num_frames set), or None without any.
    ``resolve_image`` / ``resolve_video`` map asset ids to files (a server); else the names are files."""
    if not (request.control_video or request.reference_images):
        return None
    size = dict(width=request.width, height=request.height, num_frames=request.num_frames, fit=request.fit)
    hashes: dict[str, Any] = {}
    video = mask = None
    if request.control_video:
        clip = load_video(resolve_video(request.control_video) if resolve_video else request.control_video,
                          field="control_video", **size)
        video, hashes["control_video_sha256"] = clip.frames, clip.sha256
    if request.mask_video:
        path = Path(resolve_video(request.mask_video) if resolve_video else request.mask_video)
        clip = load_video(path, field="mask_video", **size)
        mask, hashes["mask_video_sha256"] = binary_mask(clip.frames, path.name, fit=request.fit), clip.sha256
    refs = [load_image(resolve_image(r) if resolve_image else r, field="reference_images")
            for r in request.reference_images]
    if refs:
        hashes["reference_images_sha256"] = [r.sha256 for r in refs]
    clips: dict[str, Any] = {}
    for name, sized in (("face_video", False), ("background_video", True)):  # Wan-Animate's
        if getattr(request, name, None):
            own = {} if sized else {"width": None, "height": None}  # a face clip keeps its size: the model scales it
            clip = load_video(resolve_video(getattr(request, name)) if resolve_video else getattr(request, name),
                              field=name, **{**size, **own})
            clips[name.removesuffix("_video")], hashes[f"{name}_sha256"] = clip.frames, clip.sha256
    return ControlInputs(video=video, mask=mask, references=tuple(r.image for r in refs), hashes=hashes, **clips)


def binary_mask(frames: np.ndarray, name: str, *, fit: bool) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (F, H, W) uint8 of 0 and 1, thresholded at half. Without ``fit``, a clip with more
    than :data:`GREY_SHARE` grey pixels (not a mask: a photo, a soft matte) is refused naming ``mask_video``."""
    grey = frames.mean(axis=-1)
    if not fit:
        share = float(((grey > GREY[0]) & (grey < GREY[1])).mean())
        if share > GREY_SHARE:
            raise InvalidRequest(f"mask_video: {name} is not black and white ({share:.0%} of its pixels are grey); "
                                 "give a binary mask (white: make, black: keep), or fit to threshold it at half",
                                 field="mask_video")
    return (grey >= 128).astype(np.uint8)
