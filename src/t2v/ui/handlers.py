"""What the web UI does, as plain functions over a :class:`~t2v.service.JobService` (no Gradio here).

Every function either returns something the page can show or raises :class:`UIError`, whose message
is one readable sentence naming the form field at fault. ``token`` is the API key typed into the page;
it is checked on every call, exactly as the REST API checks its bearer token.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t2v.errors import Forbidden, InvalidRequest, JobNotFound, ModelUnavailable, QuotaExceeded, T2VError
from t2v.request import FORMATS, SCHEDULERS

logger = logging.getLogger(__name__)

#: The form's fields, in the order the page lays them out (GenerationRequest names plus ``seed_mode``).
FORM_KEYS = ("prompt", "negative_prompt", "model", "num_frames", "num_inference_steps", "guidance_scale", "fps",
             "width", "height", "scheduler", "seed_mode", "seed", "formats")
SEED_MODES = ("random", "fixed", "reuse last")
PRESETS = ("Fast preview", "Quality")
PLAYER_FORMAT = "webm"  # VP9 in WebM: always written, so every browser's <video> can play the result
DOWNLOAD_FORMATS = ("mp4", "webm", "gif", "json")
DEFAULT_FORMATS = ("mp4", "webm", "gif")
FINISHED = ("succeeded", "failed", "cancelled")
LABELS = {
    "prompt": "Prompt", "negative_prompt": "Negative prompt", "model": "Model", "num_frames": "Frames",
    "num_inference_steps": "Steps", "guidance_scale": "Guidance", "fps": "FPS", "width": "Width", "height": "Height",
    "scheduler": "Scheduler", "seed": "Seed", "seed_mode": "Seed", "formats": "Output formats", "crf": "Quality (CRF)",
    "api_key": "API key", "device": "Device", "dtype": "Data type", "image": "First frame", "file": "First frame",
}
STAGES = {"load": "Loading the model", "encode_prompt": "Encoding the prompt", "denoise": "Denoising",
          "decode": "Decoding frames", "export": "Writing the video files", "done": "Finishing"}


class UIError(Exception):
    """A message for the page. ``field`` names the form field at fault, when there is one."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


def readable(exc: T2VError) -> UIError:
    """Translate a library error into a sentence for the page."""
    if isinstance(exc, InvalidRequest):
        name = (exc.field or "").split(".")[0] or None
        text = str(exc)
        if exc.field and text.startswith(f"{exc.field}:"):
            text = text[len(exc.field) + 1:].strip()
        label = LABELS.get(name or "", name or "Request")
        return UIError(f"{label}: {text}", field=name)
    if isinstance(exc, ModelUnavailable):
        return UIError(f"Model unavailable: {exc}", field="model")
    if isinstance(exc, QuotaExceeded):
        return UIError(f"Too many jobs: {exc}. Wait for one to finish.")
    if isinstance(exc, JobNotFound):  # also another key's job: the same words, so ids cannot be probed
        return UIError("That job does not exist (it was deleted, or it belongs to another API key).")
    if isinstance(exc, Forbidden):
        return UIError("This API key may not do that.")
    return UIError(str(exc))


# -- API keys ----------------------------------------------------------------------------------------
def auth_required(service) -> bool:
    """True when the server runs with API keys (then every call needs a valid one)."""
    return bool(service.repo.list_keys())


def authorize(service, token: str | None):
    """The caller's key row; None when the server has no keys. Raises UIError for a missing or bad key."""
    from t2v.service.keys import authenticate

    if not auth_required(service):
        return None
    if not (token or "").strip():
        raise UIError("This server needs an API key: enter yours in the API key box at the top.", field="api_key")
    key = authenticate(service.repo, token)
    if key is None:
        raise UIError("That API key is not valid (or it was revoked).", field="api_key")
    return key


def check_key(service, token: str | None) -> str:
    key = authorize(service, token)
    return "This server runs without API keys." if key is None else f"Signed in with key **{html.escape(key.name)}**."


# -- form: limits, presets, remix ----------------------------------------------------------------------
def limits(service) -> dict[str, int]:
    s = service.settings
    return {"num_frames": s.max_frames, "num_inference_steps": s.max_steps, "width": s.max_side, "height": s.max_side}


def model_choices(service) -> list[str]:
    from t2v.models.registry import REGISTRY

    return list(dict.fromkeys([service.settings.default_model, *REGISTRY]))


def _side(value: int, limit: int) -> int:
    return max(16, min(int(value), limit) // 8 * 8)


def preset(service, name: str, model: str | None = None) -> dict[str, Any]:
    """Slider values for a preset: "Quality" is the model's defaults; "Fast preview" few steps, small size.

    Both stay within the server's limits.
    """
    from t2v.models.loader import model_defaults

    if name not in PRESETS:
        raise UIError(f"Preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    try:
        _, d = model_defaults(model or service.settings.default_model)
    except T2VError as e:
        raise readable(e) from None
    lim = limits(service)
    out = {
        "num_frames": min(int(d["num_frames"]), lim["num_frames"]),
        "num_inference_steps": min(int(d["num_inference_steps"]), lim["num_inference_steps"]),
        "guidance_scale": float(d["guidance_scale"]),
        "fps": float(d["fps"]),
        "width": _side(d["width"], lim["width"]),
        "height": _side(d["height"], lim["height"]),
        "scheduler": d["scheduler"],
    }
    if name == "Fast preview":
        steps = out["num_inference_steps"]
        out["num_inference_steps"] = min(steps, max(2, min(8, steps // 2)))
        out["num_frames"] = min(out["num_frames"], 8)
        out["width"] = min(out["width"], max(32, out["width"] // 2 // 8 * 8))
        out["height"] = min(out["height"], max(32, out["height"] // 2 // 8 * 8))
    return out


def default_form(service) -> dict[str, Any]:
    """The form a fresh page shows: the default model at its defaults ("Quality"), a random seed."""
    return {"prompt": "", "negative_prompt": "", "model": service.settings.default_model,
            **preset(service, "Quality"), "seed_mode": "random", "seed": None, "formats": list(DEFAULT_FORMATS)}


def remix(service, job_id: str, token: str | None = None) -> dict[str, Any]:
    """The form filled with a past job's parameters (its resolved seed fixed, so the clip can be made again)."""
    job = get_job(service, job_id, token)
    r = job.request
    return {"prompt": r["prompt"], "negative_prompt": r.get("negative_prompt", ""), "model": r["model"],
            "num_frames": r["num_frames"], "num_inference_steps": r["num_inference_steps"],
            "guidance_scale": r["guidance_scale"], "fps": r["fps"], "width": r["width"], "height": r["height"],
            "scheduler": r["scheduler"], "seed_mode": "fixed", "seed": r["seed"],
            "formats": [f for f in r.get("formats", DEFAULT_FORMATS) if f in FORMATS]}


# -- submit ------------------------------------------------------------------------------------------
def _number(form: dict[str, Any], key: str, kind=int, labels: dict[str, str] = LABELS):
    """``form[key]`` as an int/float; None when blank; UIError naming the field (``labels``) otherwise."""
    value = form.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UIError(f"{labels[key]}: {value!r} is not a number", field=key) from None
    if kind is int:
        if not number.is_integer():
            raise UIError(f"{labels[key]}: must be a whole number, got {value}", field=key)
        return int(number)
    return number


def _seed(service, form: dict[str, Any], key_row, last_seed: int | None) -> int | None:
    mode = form.get("seed_mode") or "random"
    if mode == "random":
        return None
    if mode == "fixed":  # a blank (or cleared) box: random, drawn by the server and recorded on the job
        return _number(form, "seed")
    if mode == "reuse last":
        if last_seed is not None:
            return int(last_seed)
        previous = service.list(limit=1, api_key=key_row)
        if previous:
            return int(previous[0].request["seed"])
        raise UIError("Seed: there is no previous generation to reuse yet; choose random", field="seed")
    raise UIError(f"Seed: unknown mode {mode!r}; choose one of {', '.join(SEED_MODES)}", field="seed_mode")


def request_fields(service, form: dict[str, Any], *, key_row=None, last_seed: int | None = None) -> dict[str, Any]:
    """The GenerationRequest fields for a filled-in form (WebM always added for the player)."""
    formats = [f for f in (form.get("formats") or []) if f]
    fields: dict[str, Any] = {
        "prompt": form.get("prompt") or "",
        "negative_prompt": form.get("negative_prompt") or None,
        "model": (form.get("model") or "").strip() or None,
        "num_frames": _number(form, "num_frames"),
        "num_inference_steps": _number(form, "num_inference_steps"),
        "guidance_scale": _number(form, "guidance_scale", float),
        "fps": _number(form, "fps", float),
        "width": _number(form, "width"),
        "height": _number(form, "height"),
        "scheduler": form.get("scheduler") or None,
        "seed": _seed(service, form, key_row, last_seed),
        "formats": list(dict.fromkeys([*formats, PLAYER_FORMAT])),
    }
    if not fields["prompt"].strip():
        raise UIError("Prompt: describe the video you want first", field="prompt")
    return {k: v for k, v in fields.items() if v is not None}


def submit(service, form: dict[str, Any], *, token: str | None = None, last_seed: int | None = None,
           image: str | Path | None = None) -> tuple[str, int]:
    """Queue a job for the form; returns ``(job_id, seed)`` (the seed is fixed at submit time).

    ``image``: the page's uploaded first frame (a file in Gradio's cache), stored as an asset of the key and
    named by the request, as the REST API does (the same picture again reuses its asset)."""
    key_row = authorize(service, token)
    fields = request_fields(service, form, key_row=key_row, last_seed=last_seed)
    try:
        if image:
            fields["image"] = image_asset(service, Path(image), key_row)
        job, _ = service.submit(fields, api_key=key_row)
    except T2VError as e:
        raise readable(e) from None
    return job.id, int(job.request["seed"])


def image_asset(service, path: Path, key_row) -> str:
    """The asset id of an uploaded image file, stored for ``key_row`` (an existing asset with the same bytes is reused)."""
    from t2v.inputs import MAX_IMAGE_BYTES

    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_IMAGE_BYTES + 1)  # add_asset refuses more, naming the limit
    except OSError:
        raise UIError("First frame: the uploaded file is gone; upload the image again", field="image") from None
    return service.add_asset(data, path.name, key_row, reuse=True, field="image")["id"]


def remix_image(service, job_id: str | None, token: str | None = None) -> Path | None:
    """The first frame a past job was given (its asset's file), or None: none given, or the asset was deleted."""
    ref = (get_job(service, job_id, token).request or {}).get("image")
    if not ref:
        return None
    try:
        return service.asset_path(ref, authorize(service, token))
    except T2VError:
        return None


# -- watching a job ------------------------------------------------------------------------------------
@dataclass
class JobView:
    """Everything the page shows about one job."""

    job_id: str
    status: str
    request: dict[str, Any]
    stage: str | None = None
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    queue_position: int | None = None
    preview: Path | None = None
    poster: Path | None = None
    video: Path | None = None
    downloads: dict[str, Path] = field(default_factory=dict)
    seed: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def fraction(self) -> float:
        if self.status == "succeeded":
            return 1.0
        return self.step / self.total if self.total else 0.0

    @property
    def message(self) -> str:
        """One line on where the job stands (markdown, user text escaped)."""
        if self.status == "queued":
            where = f"position {self.queue_position} in the queue" if self.queue_position else "starting"
            return f"Queued: {where}."
        if self.status == "running":
            text = STAGES.get(self.stage or "", "Starting")
            if self.stage == "denoise" and self.total:
                text += f": step {self.step} of {self.total}"
                if self.eta_s is not None:
                    text += f", about {format_seconds(self.eta_s)} left"
            return text + "…"
        if self.status == "succeeded":
            total = self.timings.get("total_s")
            took = f" in {format_seconds(total)}" if total is not None else ""
            return f"Done{took}. Seed {self.seed}."
        if self.status == "cancelled":
            return "Cancelled."
        return f"Job failed: {html.escape(self.error or 'unknown error')}"

    @property
    def summary(self) -> str:
        """Seed, size and timings of a finished clip (markdown)."""
        if self.status != "succeeded":
            return ""
        r = self.request
        method = f"**{html.escape(str(r['method']))}** · " if r.get("method") else ""  # image sequences
        lines = [f"**Seed** {self.seed} · {method}{r.get('num_frames')} frames {r.get('width')}×{r.get('height')} "
                 f"@ {r.get('fps', 0):g} fps · {r.get('num_inference_steps')} steps {r.get('scheduler')} · "
                 f"guidance {r.get('guidance_scale', 0):g}"]
        parts = [f"{name} {format_seconds(self.timings[k])}" for k, name in
                 (("load_s", "load"), ("encode_prompt_s", "prompt"), ("denoise_s", "denoise"), ("decode_s", "decode"),
                  ("encode_s", "encode"), ("total_s", "total")) if self.timings.get(k) is not None]
        if parts:
            lines.append("**Timings** " + " · ".join(parts))
        lines.append(self._subject())
        return "\n\n".join(lines)

    def _subject(self) -> str:
        """The summary's last line: what the clip was asked to show."""
        return f"**Prompt** {html.escape(self.request.get('prompt', ''))}"


def format_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 10:
        return f"{s:.1f} s"
    if s < 90:
        return f"{s:.0f} s"
    return f"{int(s // 60)} min {int(s % 60)} s"


def get_job(service, job_id: str | None, token: str | None = None):
    """The job ``job_id`` if the caller's key may see it; else UIError (a missing and another key's job read alike)."""
    if not job_id:
        raise UIError("No job is selected: generate one or pick one from the history.")
    key_row = authorize(service, token)
    try:
        return service.get(job_id, api_key=key_row)
    except T2VError as e:
        raise readable(e) from None


def view(service, job_id: str | None, token: str | None = None) -> JobView:
    """Where a job stands now: queue position, progress, live preview, and when done its files."""
    job = get_job(service, job_id, token)
    v = JobView(job_id=job.id, status=job.status, request=job.request or {}, stage=job.stage, step=job.step or 0,
                total=job.total or 0, eta_s=job.eta_s, error=job.error, seed=(job.request or {}).get("seed"))
    if job.status == "queued":
        v.queue_position = service.queue_position(job.id)
    elif job.status == "running":
        v.preview = service.image_path(job.id, "preview.png")
    elif job.status == "succeeded":
        result = job.result or {}
        v.seed = result.get("seed", v.seed)
        v.timings = {k: float(x) for k, x in (result.get("timings") or {}).items() if isinstance(x, (int, float))}
        v.poster = service.image_path(job.id, "poster.png")
        for fmt in DOWNLOAD_FORMATS:
            path = service.file_path(job, fmt)
            if path is not None:
                v.downloads[fmt] = path
        v.video = v.downloads.get(PLAYER_FORMAT) or v.downloads.get("mp4")
    return v


def progress_html(v: JobView) -> str:
    """A native <progress> bar with step/total and ETA (empty when there is nothing to show)."""
    if v.status == "queued":
        label = f"queued, position {v.queue_position}" if v.queue_position else "queued"
        return f'<div class="t2v-progress"><progress max="1"></progress> <span>{label}</span></div>'
    if v.status != "running" and v.status != "succeeded":
        return ""
    total = v.total or 1
    step = total if v.status == "succeeded" else min(v.step, total)
    label = f"step {v.step} / {v.total}" if v.total else STAGES.get(v.stage or "", "starting").lower()
    if v.status == "running" and v.eta_s is not None and v.stage == "denoise":
        label += f" · ETA {format_seconds(v.eta_s)}"
    if v.status == "running" and v.stage in ("decode", "export"):
        label += f" · {STAGES[v.stage].lower()}"
    return (f'<div class="t2v-progress"><progress value="{step}" max="{total}"></progress> '
            f'<span>{html.escape(label)}</span></div>')


def cancel(service, job_id: str | None, token: str | None = None) -> str:
    job = get_job(service, job_id, token)
    if job.status in FINISHED:
        return f"Nothing to cancel: the job has already {'been cancelled' if job.status == 'cancelled' else job.status}."
    job = service.cancel(job.id, api_key=authorize(service, token))
    return "Cancelled." if job.status == "cancelled" else "Cancelling: the job stops after the current step…"


def delete(service, job_id: str | None, token: str | None = None) -> str:
    job = get_job(service, job_id, token)
    try:
        service.delete(job.id, api_key=authorize(service, token))
    except T2VError as e:
        raise readable(e) from None
    return "Deleted the job and its files." if job.status in FINISHED else "The job was still running: cancelled it."


__all__ = ["FORM_KEYS", "SEED_MODES", "PRESETS", "SCHEDULERS", "FORMATS", "DOWNLOAD_FORMATS", "UIError", "JobView",
           "auth_required", "authorize", "check_key", "limits", "model_choices", "preset",
           "default_form", "remix", "remix_image", "image_asset", "request_fields", "submit", "view", "progress_html",
           "cancel", "delete", "readable", "format_seconds", "get_job"]
