"""A clip of the user's own in the video form, and what the form does with it: video-to-video (the request's
``video``, repainted to ``strength``), extend (the request's ``extend``: the clip, then seconds more), or
post-processing only (a post job of the clip: the form's post-processing steps, nothing generated). The clip
itself travels beside the form (an uploaded asset); these functions take its id. No UI toolkit here."""

from __future__ import annotations

from typing import Any

from t2v.frontend.forms import FormError, checked, number
from t2v.requests import DEFAULT_STRENGTH, POST_FORMATS

V2V, EXTEND, POST_ONLY = "video-to-video", "extend", "post-process only"
#: What the form can do with an uploaded clip, and the request field each (post: a job of its own).
CLIP_USES = (V2V, EXTEND, POST_ONLY)
USE_FIELDS = {V2V: "video", EXTEND: "extend"}
CLIP_LABELS = {"source_clip": "Your video", "clip_use": "Use it for", "strength": "Strength"}
CLIP_HINTS = {V2V: f"repaint it to the prompt, as much as Strength says (blank: {DEFAULT_STRENGTH})",
              EXTEND: "continue it by Seconds (Longer video) in the prompt's direction",
              POST_ONLY: "only the Post-processing steps, on the clip as it is"}


def clip_uses(inputs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The uses a model offers for an uploaded clip, by its ``inputs`` (post-processing needs no model)."""
    return (*(u for u in (V2V, EXTEND) if USE_FIELDS[u] in inputs), POST_ONLY)


def with_clip(fields: dict[str, Any], use: str | None, clip: str, strength: Any = None,
              inputs: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The request for the form's ``fields`` (:func:`t2v.frontend.request_fields`) and the uploaded clip's asset
    id: the video request with ``video`` (and ``strength``) or ``extend``, or the post request of the clip.
    ``inputs``: the model's input fields, to refuse a use it cannot take by name before anything is sent."""
    use = use or V2V
    if use not in CLIP_USES:
        raise FormError(f"{CLIP_LABELS['clip_use']}: {use!r} is not a use; choose one of {', '.join(CLIP_USES)}",
                        field="clip_use")
    if use == POST_ONLY:
        if not fields.get("post"):
            raise FormError("Post-processing: choose deflicker, interpolation or upscaling to post-process your "
                            "video", field="post")
        formats = [f for f in fields.get("formats") or () if f in POST_FORMATS] or ["mp4"]
        return {"mode": "post", "asset": clip, "post": fields["post"], "formats": formats,
                **({"crf": fields["crf"]} if fields.get("crf") is not None else {})}
    if inputs is not None and USE_FIELDS[use] not in inputs:
        can = ", ".join(clip_uses(inputs))
        raise FormError(f"{CLIP_LABELS['clip_use']}: {fields.get('model') or 'this model'} cannot {use} a clip; it "
                        f"can: {can}", field="clip_use")
    out = {**fields, USE_FIELDS[use]: clip}
    if use == V2V:
        value = number({"strength": strength}, "strength", float, CLIP_LABELS)
        if value is not None:
            out["strength"] = value
        checked({k: out[k] for k in ("video", "strength") if k in out})
    elif use == EXTEND and out.get("seconds") is None:
        raise FormError("Seconds: give the seconds to add to your video (Longer video)", field="seconds")
    return out


def clip_of(request: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(the request field holding a past job's clip, the use) for a remix: ("video", video-to-video),
    ("extend", extend), or (None, None) for a job made from text alone."""
    request = request or {}
    return next(((field, use) for use, field in USE_FIELDS.items() if request.get(field)), (None, None))
