"""What the web UI does, as plain functions over a :class:`~t2v.service.JobService` (no Gradio here).

Every function either returns something the page can show or raises :class:`UIError`, whose message
is one readable sentence naming the form field at fault. ``token`` is the API key typed into the page;
it is checked on every call, exactly as the REST API checks its bearer token.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
import os
from pathlib import Path
from typing import Any

from t2v import frontend as F
from t2v.errors import T2VError
from t2v.frontend import (DEFAULT_FORMATS, FINISHED, FORM_KEYS, LABELS, PLAYER_FORMAT, PRESETS, SEED_MODES, STAGES,
                          format_seconds, readable)
from t2v.requests import FORMATS, SCHEDULERS
from t2v.contract import Limits, Model, ModelList
from t2v.models.source import as_path, local_folder, looks_like_path, model_defaults
from t2v.models.registry import REGISTRY, lookup
from t2v.models.allowlist import check_allowed, is_present
from t2v.models.publicnames import accept_public_model, hide_server_paths, public_model
from t2v.families import get_family

logger = logging.getLogger(__name__)

DOWNLOAD_FORMATS = ("mp4", "webm", "gif", "json")
CLIP_FIELDS = (*F.VIDEO_FILE_KEYS, "video", "extend")  # the form's uploads that are clips, not images
UIError = F.FormError  # the page's one error type (the shared front-end logic's)


# -- API keys ----------------------------------------------------------------------------------------
def auth_required(service) -> bool:
    """True when the server runs with API keys (then every call needs a valid one)."""
    return service.access.has_keys()


def authorize(service, token: str | None, *, counted: bool = False):
    """The caller's key row; None when the server has no keys. Raises UIError for a missing or bad key.

    ``counted``: the action counts against the key's rate limit, as the same action through the REST API does
    (submitting, listing, cancelling, deleting; not watching a job or fetching its files)."""
    if not auth_required(service):
        return None
    if not (token or "").strip():
        raise UIError("This server needs an API key: enter yours in the API key box at the top.", field="api_key")
    key = service.access.authenticate(token)
    if key is None:
        raise UIError("That API key is not valid (or it was revoked).", field="api_key")
    if counted and (wait := service.access.take_rate_token(key)) is not None:
        raise UIError(f"This key's rate limit ({key.rate_limit}) is used up: try again in {math.ceil(wait)} s.",
                      field="api_key")
    return key


def check_key(service, token: str | None) -> str:
    key = authorize(service, token)
    return "This server runs without API keys." if key is None else f"Signed in with key **{html.escape(key.name)}**."


# -- form: limits, presets, remix ----------------------------------------------------------------------
def limits(service) -> dict[str, int]:
    """The server's caps, as the page's slider maxima."""
    s = service.settings
    return {"num_frames": s.max_frames, "num_inference_steps": s.max_steps, "width": s.max_side, "height": s.max_side}


def form_limits(service, model: str | None = None) -> F.FormLimits:
    """The server's caps and ``model``'s rules (default: the server's model), for presets and snapping."""
    from t2v.service.catalogue import rules_of  # deferred: imports alembic, httpx, PIL

    model = accept_public_model(service.settings, model) or service.settings.default_model
    s = service.settings
    server = Limits(max_frames=s.max_frames, max_steps=s.max_steps, max_side=s.max_side)
    try:
        family, _ = model_defaults(model, get_family)
    except T2VError:
        return F.FormLimits.of(None, server)
    folder = local_folder(model) or (as_path(model) if as_path(model).is_dir() else None)
    spec = lookup(model)
    return F.FormLimits.of(Model(id=model, rules=rules_of(family, folder, spec.tasks if spec else ())), server)


PROMPT_EXAMPLE = "a panda surfing on a big ocean wave at sunset"


def prompt_example(service, model: str | None = None) -> str:
    """The prompt box's placeholder for ``model`` (default: the server's): its registry example, else a generic one."""
    spec = lookup(accept_public_model(service.settings, model) or service.settings.default_model)
    return (spec.prompt_example if spec is not None else "") or PROMPT_EXAMPLE


def catalogue(service):
    """The models this server can run, as ``GET /v1/models`` answers (a :class:`t2v.contract.ModelList`)."""
    from t2v.service.catalogue import model_list  # deferred: imports alembic, httpx, PIL

    return ModelList.model_validate(model_list(service.settings))


def model_choices(service) -> list[tuple[str, str]]:
    """The page's model menu as (label, value), as the desktop app shows it (:func:`t2v.frontend.model_menu`):
    the server's model first (a folder by its public name, no server path), then the registry grouped by what
    each makes, each label saying whether it is here, its download size, GPU memory and licence."""
    return F.model_menu(catalogue(service))


def model_note(service, model: str | None) -> str:
    """One sentence on a model that is not here (what happens at Generate), or "" when it runs here."""
    settings = service.settings
    spec = lookup(accept_public_model(settings, model) or settings.default_model)
    if spec is None:
        return ""
    entry = Model.model_validate({**spec.to_dict(), "present": is_present(spec.id, settings, get_family)})
    return F.model_note(entry, settings.allow_downloads)


def preset(service, name: str, model: str | None = None, token: str | None = None) -> dict[str, Any]:
    """Field values for a preset ("Quality": the model's defaults; "Fast preview": fewer steps and frames at the
    model's own size), within the server's limits and the model's rules. A model other than the server's
    default is read only for a valid key and only if the server would run it (the allow-list), so the page
    tells nothing of folders it would refuse."""
    model, defaults = checked_model(service, model, token)
    return F.preset(name, defaults, form_limits(service, model))


def model_inputs(service, model: str | None = None, token: str | None = None) -> tuple[str, ...]:
    """The input fields ``model`` takes (image, last_image, control_video ...), read on the terms of :func:`preset`."""
    model, _ = checked_model(service, model, token)
    return form_limits(service, model).inputs


def checked_model(service, model: str | None, token: str | None) -> tuple[str, dict[str, Any]]:
    """(the model as the server names it, its defaults); a folder only for a valid key, if allow-listed."""
    model = accept_public_model(service.settings, model) or service.settings.default_model
    try:
        reads_files = looks_like_path(model) or os.path.isdir(as_path(model)) or lookup(model) is None
        if model != service.settings.default_model and reads_files:  # registered models' defaults are t2v's own
            authorize(service, token)
            check_allowed(model, service.settings, get_family)
        _, defaults = model_defaults(model, get_family)
    except T2VError as e:
        raise readable(e) from None
    return model, defaults


def default_form(service) -> dict[str, Any]:
    """The form a fresh page shows: the default model at its defaults ("Quality"), a random seed."""
    model = service.settings.default_model
    return {**F.default_form(public_model(service.settings, model), {}, form_limits(service, model)),
            **preset(service, "Quality")}


def remix(service, job_id: str, token: str | None = None) -> dict[str, Any]:
    """The form filled with a past job's parameters (its resolved seed fixed, so the clip can be made again)."""
    return F.remix_form(hide_server_paths(service.settings, get_job(service, job_id, token).request or {}))


# -- submit ------------------------------------------------------------------------------------------
def request_fields(service, form: dict[str, Any], *, key_row=None, last_seed: int | None = None) -> dict[str, Any]:
    """The GenerationRequest fields for a filled-in form (WebM always added for the player)."""
    def previous() -> int | None:
        jobs = service.list(limit=1, api_key=key_row)
        seed = jobs[0].request.get("seed") if jobs else None  # a post-processing job has none
        return int(seed) if seed is not None else None

    seed = F.resolve_seed(form.get("seed_mode"), form.get("seed"), last_seed=last_seed, previous=previous)
    return F.request_fields(form, seed)


def submit(service, form: dict[str, Any], *, token: str | None = None, last_seed: int | None = None,
           image: str | Path | None = None, last_image: str | Path | None = None,
           files: dict[str, Any] | None = None, clip: str | Path | None = None, clip_use: str | None = None,
           strength: Any = None) -> tuple[str, int | None]:
    """Queue a job for the form; returns ``(job_id, seed)`` (the seed is fixed at submit time; None for a
    post-processing job, which draws none).

    ``image`` and ``last_image``: the page's uploaded first and last frames; ``files``: the other uploads by
    request field (``control_video``, ``mask_video``; ``reference_images``, a list); ``clip``: the user's own
    video, used as ``clip_use`` says (:func:`t2v.frontend.with_clip`; ``strength`` for video-to-video). Each is a
    file in Gradio's cache, stored as an asset of the key and named by the request, as the REST API does (the
    same file again reuses its asset)."""
    key_row = authorize(service, token, counted=True)
    fields = request_fields(service, form, key_row=key_row, last_seed=last_seed)
    try:
        for field, value in {"image": image, "last_image": last_image, **(files or {})}.items():
            if field == "reference_images":
                if refs := [str(p) for p in value or () if p]:
                    fields[field] = [file_asset(service, Path(p), key_row, field=field) for p in refs]
            elif value:
                fields[field] = file_asset(service, Path(value), key_row, field=field)
        if clip:
            inputs = None if clip_use == F.POST_ONLY else model_inputs(service, fields.get("model"), token)
            fields = F.with_clip(fields, clip_use, file_asset(service, Path(clip), key_row, field="video"),
                                 strength, inputs)
        job, _ = service.submit(fields, api_key=key_row)
    except T2VError as e:
        raise readable(e) from None
    seed = job.request.get("seed")
    return job.id, None if seed is None else int(seed)


def file_asset(service, path: Path, key_row, field: str = "image") -> str:
    """The asset id of an uploaded image or video file (the form's ``field``), stored for ``key_row`` (an
    existing asset with the same bytes is reused)."""
    from t2v.inputs import MAX_IMAGE_BYTES, MAX_VIDEO_BYTES  # deferred: imports numpy

    limit = MAX_VIDEO_BYTES if field in CLIP_FIELDS else MAX_IMAGE_BYTES
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)  # add_asset refuses more, naming the limit
        os.utime(path)  # used now: kept its full time again before the page's upload sweep removes it
    except OSError:
        raise UIError(f"{LABELS[field]}: the uploaded file is gone; upload it again", field=field) from None
    return service.assets.add_asset(data, path.name, key_row, reuse=True, field=field)["id"]


def remix_file(service, job_id: str | None, token: str | None = None, field: str = "image") -> Path | None:
    """The file a past job was given as ``field`` (``image``, ``last_image``, ``control_video``, ``mask_video``:
    its asset's file), or None: none given, or the asset was deleted."""
    ref = (get_job(service, job_id, token).request or {}).get(field)
    return asset_file(service, ref, token) if ref else None


def remix_references(service, job_id: str | None, token: str | None = None) -> list[Path]:
    """The reference images a past job was given (those whose assets still exist)."""
    refs = (get_job(service, job_id, token).request or {}).get("reference_images") or ()
    return [p for p in (asset_file(service, ref, token) for ref in refs) if p is not None]


def asset_file(service, ref: str, token: str | None) -> Path | None:
    try:
        return service.assets.asset_path(ref, authorize(service, token))
    except T2VError:
        return None


# -- watching a job ------------------------------------------------------------------------------------
class JobView(F.JobView):
    """The shared :class:`t2v.frontend.JobView`, with the page's markdown (user text escaped); ``preview``,
    ``poster``, ``video`` and ``downloads`` are files on this server."""

    @property
    def message(self) -> str:
        return html.escape(super().message, quote=False)

    @property
    def summary(self) -> str:
        """Seed, size and timings of a finished clip (markdown)."""
        parts = self.summary_parts()
        if not parts:
            return ""
        return "\n\n".join([*(f"**{label}** {html.escape(text)}" for label, text in parts[:-1]), self._subject()])

    def _subject(self) -> str:
        """The summary's last line: what the clip was asked to show."""
        return f"**Prompt** {html.escape(str(self.request.get('prompt') or ''))}"


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
    status = shown_status(job)
    v = JobView(job_id=job.id, status=status, request=job.request or {}, stage=job.stage, step=job.step or 0,
                total=job.total or 0, eta_s=job.eta_now(), error=job.error, seed=(job.request or {}).get("seed"))
    if status == "queued":
        v.queue_position = service.queue_position(job.id)
    elif job.status == "running":
        v.preview = service.image_path(job.id, "preview.png")
        v.live = service.live_local(job)
    elif job.status == "succeeded":
        result = job.result or {}
        v.seed = result.get("seed", v.seed)
        v.timings = {k: float(x) for k, x in (result.get("timings") or {}).items() if isinstance(x, (int, float))}
        v.post = result.get("postprocess") or None
        v.long = result.get("long") or None
        v.audio = result.get("audio") or None
        v.poster = service.image_path(job.id, "poster.png")
        for fmt in DOWNLOAD_FORMATS:
            path = service.file_path(job, fmt)
            if path is not None:
                v.downloads[fmt] = path
        v.video = v.downloads.get(PLAYER_FORMAT) or v.downloads.get("mp4")
    return v


SteadyEta = F.SteadyEta


def progress_html(v: JobView, smooth: F.SteadyEta | None = None) -> str:
    """A native <progress> bar with step/total and ETA (empty when there is nothing to show); ``smooth`` steadies
    the ETA of the job being watched."""
    if smooth is not None and v.status == "running":
        v = dataclasses.replace(v, eta_s=smooth(v.eta_s))
    if v.status == "queued":
        return f'<div class="t2v-progress"><progress max="1"></progress> <span>{F.progress_label(v)}</span></div>'
    if v.status not in ("running", "succeeded"):
        return ""
    total = v.total or 1
    step = total if v.status == "succeeded" else min(v.step, total)
    return (f'<div class="t2v-progress"><progress value="{step}" max="{total}"></progress> '
            f'<span>{html.escape(F.progress_label(v))}</span></div>')


def controls(status: str | None) -> tuple[bool, bool, bool]:
    """Whether Cancel, Pause and Resume act on a job in ``status`` (None: no job shown): none on a finished
    job, Pause on a queued or running one, Resume on a paused one."""
    if status is None or status in FINISHED:
        return False, False, False
    return True, status != "paused", status == "paused"


def shown_status(job) -> str:
    """A job's status as the page shows it: a queued job held by Pause is "paused"."""
    return "paused" if job.paused and job.status == "queued" else job.status


def job_status(service, job_id: str | None, token: str | None = None) -> str | None:
    """The shown job's status after an action on it (None when it cannot be read)."""
    try:
        return shown_status(get_job(service, job_id, token))
    except UIError:
        return None


def cancel(service, job_id: str | None, token: str | None = None) -> str:
    job = get_job(service, job_id, token)
    if job.status in FINISHED:
        return f"Nothing to cancel: the job has already {'been cancelled' if job.status == 'cancelled' else job.status}."
    job = service.cancel(job.id, api_key=authorize(service, token, counted=True))
    return "Cancelled." if job.status == "cancelled" else "Cancelling: the job stops after the current step…"


def pause(service, job_id: str | None, token: str | None = None) -> str:
    """Pause the job: a queued one waits until resumed; a running one stops after its current step, keeping its
    checkpoint, and frees its worker."""
    job = on_job(service, get_job(service, job_id, token), token, service.steering.pause)
    if job.status == "running":
        return "Pausing: the job stops after the current step and waits, its progress kept, until you resume it…"
    return "Paused: the job waits until you press Resume."


def on_job(service, job, token: str | None, action, *args, **kw):
    """``action(job.id, *args, api_key=..., **kw)`` for the page's key (a counted request) on a job it may see
    (:func:`get_job`), its refusal as a UIError."""
    try:
        return action(job.id, *args, api_key=authorize(service, token, counted=True), **kw)
    except T2VError as e:
        raise readable(e) from None


def resume(service, job_id: str | None, token: str | None = None) -> str:
    on_job(service, get_job(service, job_id, token), token, service.steering.resume)
    return "Resumed: the job is back in the queue and goes on from where it stopped."


def update_queued(service, job_id: str | None, form: dict[str, Any], *, token: str | None = None,
                  last_seed: int | None = None) -> str:
    """Give the shown job, while it is still queued, the form's values (checked as at submit)."""
    job = get_job(service, job_id, token)
    key_row = authorize(service, token, counted=True)
    fields = request_fields(service, form, key_row=key_row, last_seed=last_seed)
    try:
        service.steering.change(job.id, fields, api_key=key_row)
    except T2VError as e:
        raise readable(e) from None
    return "Updated the queued job: it will run with the form as it is now."


def set_priority(service, job_id: str | None, value, token: str | None = None) -> str:
    """A queued job's new priority (-100 to 100; a higher one starts first)."""
    job = get_job(service, job_id, token)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UIError("Priority: give a whole number from -100 to 100, e.g. 10") from None
    job = on_job(service, job, token, service.steering.change, {}, priority=number)
    where = service.queue_position(job.id)
    return f"Priority {job.priority}" + (f": position {where} in the queue." if where else ".")


def delete(service, job_id: str | None, token: str | None = None) -> str:
    job = get_job(service, job_id, token)
    on_job(service, job, token, service.delete)
    return "Deleted the job and its files." if job.status in FINISHED else "The job was still running: cancelled it."


__all__ = ["DEFAULT_FORMATS", "LABELS", "STAGES", "FORM_KEYS", "SEED_MODES", "PRESETS", "SCHEDULERS", "FORMATS", "DOWNLOAD_FORMATS", "UIError", "JobView",
           "auth_required", "authorize", "check_key", "limits", "model_choices", "preset",
           "default_form", "remix", "remix_file", "file_asset", "request_fields", "submit", "view", "progress_html",
           "cancel", "pause", "resume", "set_priority", "update_queued", "delete", "readable", "format_seconds", "get_job"]
