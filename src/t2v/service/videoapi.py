"""The OpenAI-style Videos API's shapes (``/openai/v1/videos``): a create body turned into t2v's request fields,
and a job shown as a ``video`` object. The route module (:mod:`t2v.api.openai`) only moves them over HTTP.

``seconds`` becomes a frame count through the model's fps and its family's frame rule (rounded to the nearest
count the family takes); ``size`` (``WxH``) becomes width and height, checked against the family's size rule.
t2v's own fields (seed, num_inference_steps, guidance_scale, negative_prompt, fps, ...) come in beside them
with the names and checks of t2v's API."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

from t2v.errors import InvalidRequest
from t2v.export.figures import contact_sheet
from t2v.families.base import nearest_multiple
from t2v.models.publicnames import accept_public_model, hide_server_paths, public_model
from t2v.models.source import local_folder, model_defaults
from t2v.service.catalogue import rules_of
from t2v.families import get_family

#: t2v's job states as the Videos API names them (a cancelled job reads as failed, its error saying so).
STATUS = {"queued": "queued", "paused": "queued", "running": "in_progress", "succeeded": "completed", "failed": "failed",
          "cancelled": "failed"}
#: t2v request fields as the Videos API names them, for error messages' ``param``.
PARAMS = {"width": "size", "height": "size", "num_frames": "seconds", "image": "input_reference"}
SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*$")


def param_of(field: str | None) -> str | None:
    """The Videos API's name of a t2v request field (``width`` -> ``size``)."""
    if field is None:
        return None
    head = field.split(".")[0]
    return PARAMS.get(head, field)


def parse_size(size: Any) -> tuple[int, int]:
    m = SIZE.match(str(size))
    if not m or not int(m[1]) or not int(m[2]):
        raise InvalidRequest(f"size: {size!r} is not WIDTHxHEIGHT in pixels (e.g. 256x256)", field="size")
    return int(m[1]), int(m[2])


def parse_seconds(seconds: Any) -> float:
    try:
        value = float(str(seconds).strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequest(f"seconds: {seconds!r} is not a positive number of seconds (e.g. \"4\")", field="seconds")
    if value > MAX_SECONDS:  # before any arithmetic: 1e308 s times the frame rate is no frame count
        raise InvalidRequest(f"seconds: {seconds!r} is more than any clip here; at most {MAX_SECONDS} (the model's "
                             "frame limit is checked next)", field="seconds")
    return value


#: The longest ``seconds`` read as a number (an hour); the model's own frame limit is far below it.
MAX_SECONDS = 3600


def frames_for(seconds: float, fps: int, *, frame_step: int, max_frames: int, model: str) -> int:
    """The frame count nearest ``seconds`` at ``fps`` that the family takes (``frame_step * k + 1``)."""
    n = max(1, round(seconds * fps))
    if frame_step > 1:
        n = frame_step * max(1, round((n - 1) / frame_step)) + 1
    if n > max_frames:
        most = (max_frames - 1) // frame_step * frame_step + 1 if frame_step > 1 else max_frames
        raise InvalidRequest(f"seconds: {seconds:g} s at {fps} fps is {n} frames, more than {model} makes here "
                             f"({max_frames}); the longest: \"{most / fps:g}\" ({most} frames)", field="seconds")
    return n


def request_fields(settings, body: dict[str, Any]) -> dict[str, Any]:
    """t2v's request fields for a Videos API create body (``seconds`` and ``size`` turned into frames and pixels;
    every other field as t2v's API takes it)."""
    fields = dict(body)
    seconds, size = fields.pop("seconds", None), fields.pop("size", None)
    if seconds is not None and "num_frames" in fields:
        raise InvalidRequest("seconds: give seconds or num_frames, not both", field="seconds")
    if size is not None and ({"width", "height"} & fields.keys()):
        raise InvalidRequest("size: give size or width and height, not both", field="size")
    model = fields.get("model") or settings.default_model
    if not isinstance(model, str):
        return fields  # the request's own check names it
    family, defaults = model_defaults(accept_public_model(settings, model), get_family)
    rules = rules_of(family, local_folder(accept_public_model(settings, model))) or {}
    shown = public_model(settings, model)
    if size is not None:
        width, height = parse_size(size)
        m = rules.get("size_multiple") or 8
        if width % m or height % m:
            raise InvalidRequest(f"size: {width}x{height} is not a multiple of {m} on each side, which {shown} needs; "
                                 f"nearest valid: {nearest_multiple(width, m)}x{nearest_multiple(height, m)}",
                                 field="size")
        fields["width"], fields["height"] = width, height
    if seconds is not None:
        fps = fields.get("fps") or defaults.get("fps") or 8
        try:
            fps = int(fps)
        except (TypeError, ValueError):
            return fields  # the request's own check names fps
        caps = [settings.max_frames, rules.get("max_frames")]
        fields["num_frames"] = frames_for(parse_seconds(seconds), fps, frame_step=rules.get("frame_step") or 1,
                                          max_frames=min(c for c in caps if c), model=shown)
    return fields


def stamp(dt) -> int | None:
    return int(dt.timestamp()) if dt is not None else None


def video_object(service, job) -> dict[str, Any]:
    """A job as the Videos API's ``video`` object."""
    request = hide_server_paths(service.settings, job.request)
    record = job.result or {}
    fps = record.get("fps") or request.get("fps") or 8
    # a longer video (seconds, extend): its whole length once made, the seconds asked for until then
    frames = (record.get("long") or {}).get("frames") or record.get("num_frames") or request.get("num_frames") or 0
    if not record and request.get("seconds"):
        frames = round(float(request["seconds"]) * fps)
    width, height = record.get("width") or request.get("width"), record.get("height") or request.get("height")
    if job.status == "succeeded":
        progress = 100
    else:
        progress = int(100 * job.step / job.total) if job.total and job.status == "running" else 0
    error = None
    if job.status == "failed":
        error = {"code": "generation_failed", "message": job.error or "the job failed"}
    elif job.status == "cancelled":
        error = {"code": "cancelled", "message": job.error or "the job was cancelled"}
    return {
        "id": job.id, "object": "video", "model": request.get("model"), "status": STATUS.get(job.status, job.status),
        "progress": progress, "created_at": stamp(job.created_at),
        "completed_at": stamp(job.finished_at) if job.status == "succeeded" else None, "expires_at": None,
        "seconds": f"{frames / fps:g}" if frames else "0", "size": f"{width}x{height}" if width and height else "",
        "prompt": request.get("prompt"), "error": error, "remixed_from_video_id": job.remixed_from,
    }


def spritesheet(path, *, columns: int | None = None) -> bytes:
    """A PNG contact sheet of the video file at ``path`` (every frame, row by row)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sheet.png"
        contact_sheet(frames, out, columns=columns)
        return out.read_bytes()


def remix_fields(job, prompt: str) -> dict[str, Any]:
    """The request of ``job`` (seed included) with a new prompt."""
    fields = {k: v for k, v in job.request.items() if v is not None and k != "mode"}
    fields["prompt"] = prompt
    return fields
