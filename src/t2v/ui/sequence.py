"""What the web UI's *Image sequence* tab does, as plain functions over a JobService (no Gradio here).

A sequence job is a video made one image per frame from keyframe prompts with a text-to-image model
(:class:`t2v.requests.SequenceRequest`). It is queued, watched, cancelled and listed like a
video job, so this module builds on :mod:`t2v.ui.handlers` (API keys, job views, cancel) and adds what
differs: the form (keyframe lines, method, img2img camera, figures), progress counted as frames x steps,
and the contact sheet and denoise grid images of a finished job.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from t2v import frontend as F
from t2v.errors import InvalidRequest, T2VError
from t2v.frontend import is_sequence
from t2v.requests import METHODS, parse_keyframes
import t2v.ui.handlers as H
from t2v.ui.handlers import UIError
from t2v.models.source import model_defaults
from t2v.ui.events import poll as watch
from t2v.families import get_family

#: The tab's fields, in the order the page lays them out (SequenceRequest names plus ``grid_steps``).
FORM_KEYS = ("keyframes", "method", "model", "negative_prompt", "seed", "num_inference_steps", "guidance_scale",
             "width", "height", "fps", "strength", "zoom", "pan_x", "pan_y", "rotate", "contact_sheet",
             "denoise_grid", "grid_steps")
CAMERA_KEYS = ("strength", "zoom", "pan_x", "pan_y", "rotate")  # img2img only
FORMATS = ("mp4", H.PLAYER_FORMAT)  # the MP4 to download, the WebM for the player; the JSON record comes anyway
DOWNLOAD_FORMATS = ("mp4", "webm", "json")
FIGURES = ("contact_sheet", "denoise_grid")
LABELS = {
    **H.LABELS, "keyframes": "Keyframes", "method": "Method", "strength": "Strength", "zoom": "Zoom",
    "pan_x": "Pan x", "pan_y": "Pan y", "rotate": "Rotate", "contact_sheet": "Contact sheet",
    "denoise_grid": "Denoise grid steps", "grid_steps": "Denoise grid steps", "num_frames": "Frames",
}
PLACEHOLDER = "0: a forest in spring, morning light\n24: the same forest in autumn\n48: the same forest under snow"
_FIELD_PREFIX = re.compile(r"^(\w+):\s*")


def default_form(service) -> dict[str, Any]:
    """A fresh tab: the server's default image model at its own defaults (within the server's limits)."""
    model = service.settings.default_image_model
    try:
        _, d = model_defaults(model, get_family)
    except T2VError:
        d = {}
    lim = H.form_limits(service, model)
    return {
        "keyframes": "", "method": METHODS[0], "model": model, "negative_prompt": "",
        "seed": None, "num_inference_steps": lim.steps(d.get("num_inference_steps", 25)),
        "guidance_scale": float(d.get("guidance_scale", 7.5)), "fps": float(d.get("fps", 12)),
        "width": lim.side(d.get("width", 512)), "height": lim.side(d.get("height", 512)),
        "strength": 0.55, "zoom": 1.0, "pan_x": 0.0, "pan_y": 0.0, "rotate": 0.0,
        "contact_sheet": True, "denoise_grid": False, "grid_steps": "auto",
    }


def keyframe_lines(text: str | None) -> list[str]:
    """The non-blank lines of the keyframes box (each ``INDEX: prompt``; the core checks them)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise UIError("Keyframes: write one 'INDEX: prompt' per line, starting at 0 (e.g. '0: a forest in spring')",
                      field="keyframes")
    return lines


def frames_note(text: str | None, fps: Any = None) -> str:
    """A line under the keyframes box: how many frames (and seconds) they make, or what is wrong with them."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    try:
        frames = parse_keyframes(lines)[-1][0] + 1
    except ValueError as e:
        return f"⚠ {html.escape(str(e))}"
    try:
        seconds = f", {frames / float(fps):.1f} s at {float(fps):g} fps" if fps and float(fps) > 0 else ""
    except (TypeError, ValueError):
        seconds = ""
    return f"{len(lines)} keyframe{'s' * (len(lines) != 1)} → {frames} frame{'s' * (frames != 1)}{seconds}"


def _number(form: dict[str, Any], key: str, kind=int):
    return F.number(form, key, kind, labels=LABELS)


def _grid_steps(text: Any) -> str:
    text = str(text or "").strip().lower() or "auto"
    if text != "auto" and not re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        raise UIError(f"Denoise grid steps: {text!r} is not 'auto' or step numbers like 1,5,10", field="grid_steps")
    return text


def request_fields(form: dict[str, Any]) -> dict[str, Any]:
    """The ``service.submit`` fields (``mode: sequence``) for a filled-in tab; blank boxes take the defaults."""
    out: dict[str, Any] = {
        "mode": "sequence",
        "keyframes": keyframe_lines(form.get("keyframes")),
        "method": (form.get("method") or METHODS[0]).strip(),
        "model": (form.get("model") or "").strip() or None,
        "negative_prompt": form.get("negative_prompt") or None,
        "seed": _number(form, "seed"),
        "num_inference_steps": _number(form, "num_inference_steps"),
        "guidance_scale": _number(form, "guidance_scale", float),
        "width": _number(form, "width"),
        "height": _number(form, "height"),
        "fps": _number(form, "fps", float),
        "formats": list(FORMATS),
        "contact_sheet": bool(form.get("contact_sheet")),
    }
    if out["method"] == "img2img":  # other methods ignore the camera: keep it out of their records
        out.update({k: _number(form, k, float) for k in CAMERA_KEYS})
    if form.get("denoise_grid"):
        out["denoise_grid"] = _grid_steps(form.get("grid_steps"))
    return {k: v for k, v in out.items() if v is not None}


def readable(exc: T2VError) -> UIError:
    """Like :func:`t2v.ui.handlers.readable`, with this tab's labels (Keyframes, Strength, Zoom...)."""
    if not isinstance(exc, InvalidRequest):
        return H.readable(exc)
    name, text = (exc.field or "").split(".")[0], str(exc)
    while (m := _FIELD_PREFIX.match(text)) and m.group(1) in (name, "request", *LABELS):
        if m.group(1) in LABELS:  # "request: denoise_grid: step 9 is past..." names the field in its text
            name = m.group(1)
        text = text[m.end():]
    if name in LABELS:
        return UIError(f"{LABELS[name]}: {text}", field=name)
    return H.readable(exc)


def submit(service, form: dict[str, Any], *, token: str | None = None) -> tuple[str, int]:
    """Validate and queue a sequence job; returns ``(job_id, seed)``. Bad input raises UIError, queues nothing."""
    key_row = H.authorize(service, token, counted=True)
    fields_ = request_fields(form)
    try:
        job, _ = service.submit(fields_, api_key=key_row)
    except T2VError as e:
        raise readable(e) from None
    return job.id, int(job.request["seed"])


# -- watching a job ------------------------------------------------------------------------------------
def frame_position(request: dict[str, Any], step: int) -> tuple[str, int, int]:
    """Which frame (or keyframe, for ``interpolate``) the model is on after ``step`` model steps in all.

    Frames are denoised one after another: ``steps`` each, except img2img, whose later frames run only
    ``int(steps * strength)``, and interpolate, which runs the keyframes only. Returns (unit, number, count).
    """
    from t2v.image.sd import img2img_steps  # deferred: imports numpy

    frames, steps = int(request.get("num_frames") or 1), max(1, int(request.get("num_inference_steps") or 1))
    method = request.get("method")
    if method == "interpolate":
        count = len(request.get("keyframes") or ()) or 1
        return "keyframe", min(step // steps + 1, count), count
    if method == "img2img" and step >= steps:
        per = img2img_steps(steps, float(request.get("strength", 0.55)))
        return "frame", min(2 + (step - steps) // per, frames), frames
    return "frame", min(step // steps + 1, frames), frames


@dataclass
class SequenceView(H.JobView):
    """A :class:`~t2v.ui.handlers.JobView` plus the sequence's figures and frame-wise progress."""

    contact_sheet: Path | None = None
    denoise_grid: Path | None = None

    def position(self) -> str:
        unit, number, count = frame_position(self.request, self.step)
        return f"{unit} {number} of {count}"

    @property
    def message(self) -> str:
        if self.status == "running" and self.stage == "denoise" and self.total:
            text = f"Denoising {self.position()}: step {self.step} of {self.total}"
            if self.eta_s is not None:
                text += f", about {H.format_seconds(self.eta_s)} left"
            return text + "…"
        return super().message

    def _subject(self) -> str:
        keys = "; ".join(f"{f}: {html.escape(str(p))}" for f, p in self.request.get("keyframes") or ())
        return f"**Keyframes** {keys}"


def view_any(service, job_id: str | None, token: str | None = None) -> H.JobView:
    """A job picked from the history: a :class:`SequenceView` (with its figures) for a sequence job, else a JobView."""
    base = H.view(service, job_id, token)
    return view(service, job_id, token, base=base) if is_sequence(base.request) else base


def remix(service, job_id: str | None, token: str | None = None) -> dict[str, Any]:
    """This tab's form filled with a past sequence job's parameters (its resolved seed kept, so it can be made again)."""
    r = H.get_job(service, job_id, token).request or {}
    if not is_sequence(r):
        raise UIError(f"Job {job_id} is a video job, not an image sequence: remix it in the Video tab.")
    grid = [int(s) for s in r.get("denoise_grid") or ()]
    return {
        "keyframes": "\n".join(f"{frame}: {prompt}" for frame, prompt in r["keyframes"]),
        "method": r["method"], "model": r["model"], "negative_prompt": r.get("negative_prompt") or "",
        "seed": str(r["seed"]), **{k: r[k] for k in ("num_inference_steps", "guidance_scale", "width", "height", "fps")},
        **{k: r[k] for k in CAMERA_KEYS},
        "contact_sheet": bool(r.get("contact_sheet")), "denoise_grid": bool(grid),
        "grid_steps": "auto" if grid in ([], [0]) else ",".join(map(str, grid)),
    }


def remix_any(service, job_id: str | None, token: str | None = None) -> tuple[str, dict[str, Any]]:
    """Which tab a past job's parameters go to and the form for it: ``("sequence", ...)`` or ``("video", ...)``."""
    if F.remix_target(H.get_job(service, job_id, token).request) == "sequence":
        return "sequence", remix(service, job_id, token)
    return "video", H.remix(service, job_id, token)


def view(service, job_id: str | None, token: str | None = None, *, base: H.JobView | None = None) -> SequenceView:
    """Where a sequence job stands now; when it has succeeded, also its figures. ``base``: its JobView, if made."""
    base = base or H.view(service, job_id, token)
    v = SequenceView(**{f.name: getattr(base, f.name) for f in fields(base)})
    if v.status == "succeeded":
        job = service.get(v.job_id, api_key=H.authorize(service, token))
        v.contact_sheet = service.file_path(job, "contact_sheet")
        v.denoise_grid = service.file_path(job, "denoise_grid")
        v.downloads = {k: p for k, p in v.downloads.items() if k in DOWNLOAD_FORMATS}
    return v


def progress_html(v: SequenceView) -> str:
    """The video tab's <progress> bar, labelled with frames x steps while the model runs."""
    if v.status != "running" or v.stage != "denoise" or not v.total:
        return H.progress_html(v)
    r = v.request
    label = (f"{v.position()} · step {v.step} / {v.total} "
             f"({r.get('num_frames')} frames × {r.get('num_inference_steps')} steps)")
    if v.eta_s is not None:
        label += f" · ETA {H.format_seconds(v.eta_s)}"
    return (f'<div class="t2v-progress"><progress value="{min(v.step, v.total)}" max="{v.total}"></progress> '
            f'<span>{html.escape(label)}</span></div>')


def poll(service, job_id: str, token: str | None = None, *, interval: float = 0.3,
         keep_going: Callable[[], bool] = lambda: True) -> Iterator[SequenceView]:
    """:func:`t2v.ui.events.poll` with this tab's views (frames x steps, figures at the end)."""
    return watch(service, job_id, token, interval=interval, keep_going=keep_going, view=view)


__all__ = ["FORM_KEYS", "METHODS", "FIGURES", "DOWNLOAD_FORMATS", "SequenceView", "default_form", "keyframe_lines", "frames_note",
           "request_fields", "readable", "submit", "frame_position", "is_sequence", "view", "view_any", "remix",
           "remix_any", "progress_html", "poll"]
