"""Control inputs of a request (VACE, for the Wan VACE models): a control video that guides the motion (pose,
depth, edges: made by the user, given as a video), a mask video that says which parts to make and which to keep
(inpainting, outpainting), reference images of a subject or style, and the strength of it all. Wan-Animate takes
the control video as its pose video, beside a face video, and in replace mode a background video with the mask.

Here only what a request can tell by itself; sizes, frame counts and mask values are checked when the files are
read (:mod:`t2v.control`), before any weights load."""

from __future__ import annotations

from typing import Any

MAX_REFERENCES = 4  # each adds a latent frame to the run (diffusers' and VACE's examples use one to three)
CONTROL_FIELDS = ("control_video", "mask_video", "reference_images", "face_video", "background_video")


def check_references(v: Any) -> tuple[str, ...]:
    """The reference images as a tuple of non-empty, distinct names, at most :data:`MAX_REFERENCES`."""
    if v is None:
        return ()
    if isinstance(v, str):
        v = (v,)
    refs = tuple(v)
    for ref in refs:
        if not isinstance(ref, str) or not ref.strip():
            raise ValueError("each reference image must be a file name or an asset id")
        if len(ref) > 4096:
            raise ValueError("a reference image name is at most 4096 characters")
    if len(refs) > MAX_REFERENCES:
        raise ValueError(f"{len(refs)} reference images; at most {MAX_REFERENCES}")
    twice = sorted({r for r in refs if refs.count(r) > 1})
    if twice:
        raise ValueError(f"{twice[0]} is given twice; give each reference image once")
    return refs


def check_control(request) -> None:
    """Combinations a request cannot have, whatever its model (ValueError naming the field)."""
    if request.mask_video is not None and request.control_video is None:
        raise ValueError("mask_video: a mask says which parts of control_video to keep; give control_video too")
    for name in ("face_video", "background_video"):  # Wan-Animate's: beside the pose video (control_video)
        if getattr(request, name) is not None and request.control_video is None:
            raise ValueError(f"{name}: goes with the pose video a character follows; give control_video too")
    if request.background_video is not None and request.mask_video is None:
        raise ValueError("background_video: replace mode puts the character where mask_video is white; give "
                         "mask_video too")
    uses = request.control_video is not None or bool(request.reference_images)
    if not uses:
        if request.control_scale != 1.0:
            raise ValueError("control_scale: only a run with control_video or reference_images uses it; leave it out")
        if request.fit:
            raise ValueError("fit: only control_video and mask_video are fitted; leave it out")
    for name in CONTROL_FIELDS:  # (an image beside them is the model's to take or refuse: LTX-2 takes one)
        if getattr(request, name) and request.video is not None:
            raise ValueError(f"{name}: a run with control inputs takes no input video; give the clip as "
                             "control_video")
    if uses and request.is_long:
        raise ValueError("control_video: a longer video (seconds, prompt_schedule, extend) takes no control inputs yet")
