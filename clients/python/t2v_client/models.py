"""The t2v REST API's answers as typed models, and the events of a job's stream.

These are the server's own response types: ``t2v serve`` declares each route's ``response_model`` with them
(``t2v.contract`` imports them from here), so ``/openapi.json`` describes what comes back. Pydantic only.
Unknown fields are kept, so an older client reads a newer server's answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FINISHED", "Asset", "Batch", "BatchLine", "Event", "Job", "JobFile", "JobPage", "JobResult", "Limits", "Model", "ModelList",
           "ModelRules", "Progress", "RecordPage", "Result", "Status", "Webhook"]

Status = Literal["queued", "paused", "running", "succeeded", "failed", "cancelled"]
FINISHED = ("succeeded", "failed", "cancelled")


class Result(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class Progress(Result):
    stage: str | None = Field(None, description="load, encode_prompt, denoise, decode, post, export or done")
    step: int = 0
    total: int | None = None
    fraction: float = Field(0.0, ge=0, le=1)
    eta_s: float | None = None


class JobFile(Result):
    format: str = Field(..., description="mp4, webm, gif, png, json, contact_sheet or denoise_grid")
    file: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    url: str | None = Field(None, description="Where to fetch it (None for a PNG frames folder)")


class JobResult(Result):
    files: list[JobFile] = Field(default_factory=list)
    metadata: dict[str, Any] | None = Field(None, description="The reproducibility record")


class Webhook(Result):
    status: str | None = None
    attempts: int = 0
    error: str | None = None


class Job(Result):
    """A job: GET /v1/videos/{id}, POST /v1/videos, DELETE /v1/videos/{id}, and each item of a list."""

    id: str
    status: Status
    priority: int = 0
    queue_position: int | None = None
    progress: Progress = Field(default_factory=Progress)
    request: dict[str, Any] = Field(default_factory=dict)
    result: JobResult | None = None
    error: str | None = None
    attempts: int = 0
    cancel_requested: bool = False
    pause_requested: bool = False
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    webhook: Webhook | None = None
    links: dict[str, str] = Field(default_factory=dict, description="self, events, content, metadata")

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def file(self, fmt: str) -> JobFile | None:
        """The result file of format ``fmt`` (None before success or when not made)."""
        return next((f for f in (self.result.files if self.result else []) if f.format == fmt), None)


class JobPage(Result):
    """One page of ``GET /v1/videos``; pass ``next_cursor`` as ``cursor`` for the next (None: the last page)."""

    items: list[Job] = Field(default_factory=list)
    next_cursor: str | None = None


class BatchLine(Result):
    """A line of a batch that was not queued: its number (from 1), the field and why."""

    line: int
    field: str | None = None
    message: str = ""


class Batch(Result):
    """``POST /v1/batches``, ``GET /v1/batches/{id}`` and its cancel, pause and resume."""

    id: str
    object: Literal["batch"] = "batch"
    created_at: str | None = None
    total: int = 0
    counts: dict[str, int] = Field(default_factory=dict, description="Jobs by state: queued, paused, running, "
                                   "succeeded, failed, cancelled")
    job_ids: list[str] = Field(default_factory=list)
    invalid: list[BatchLine] = Field(default_factory=list, description="Lines left out (partial=true)")
    changed: int | None = Field(None, description="Jobs a cancel, pause or resume applied to")
    links: dict[str, Any] = Field(default_factory=dict)


class ModelRules(Result):
    """What a model accepts: sizes a multiple of ``size_multiple``, frame counts ``frame_step * k + 1`` up to
    ``max_frames``, these ``schedulers`` (None: all) and ``modes`` (video, i2v, image)."""

    size_multiple: int = 8
    frame_step: int = 1
    max_frames: int | None = None
    schedulers: list[str] | None = None
    modes: list[str] = Field(default_factory=lambda: ["video"])
    inputs: list[str] = Field(default_factory=list, description=(
        "The request's input fields the model takes: image, last_image, video, extend, control_video, mask_video, "
        "reference_images"))


class Model(Result):
    id: str
    family: str | None = None
    description: str | None = None
    tasks: list[str] = Field(default_factory=list, description="t2v, i2v, image")
    defaults: dict[str, Any] = Field(default_factory=dict)
    license: str | None = None
    license_url: str | None = None
    license_notice: str | None = None
    download_gb: float | None = None
    vram_gb: float | None = None
    aliases: list[str] = Field(default_factory=list)
    bundled: bool = False
    present: bool | None = Field(None, description="Whether it runs on this server without a download")
    base_model: str | None = None
    rules: ModelRules | None = Field(None, description="What the model accepts (sizes, frame counts, modes)")


class Limits(Result):
    """This server's caps on a request (each model's own rules come on top)."""

    max_frames: int | None = None
    max_steps: int | None = None
    max_side: int | None = None


class ModelList(Result):
    """``GET /v1/models``: the registered models, the server's default model (listed first; a local folder
    the server was started with is listed too) and the server's limits."""

    default: str | None = None
    items: list[Model] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    downloads: bool = Field(False, description="Whether this server downloads a model that is not here at first use")


class Asset(Result):
    """An uploaded image or video (``POST /v1/assets``); ``kind`` says which."""

    id: str
    kind: str | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    content_type: str | None = None
    size: int | None = None
    filename: str | None = None
    created_at: str | None = None


class RecordPage(Result):
    """``GET /v1/records``: records of finished jobs (each the JSON sidecar plus ``job_id``, ``api_key_id``,
    ``status``, ``error`` and ``locations``), newest first."""

    source: str = "sql"
    items: list[dict[str, Any]] = Field(default_factory=list)


class Event(Result):
    """One Server-Sent Event of ``/v1/videos/{id}/events``.

    ``event`` is ``progress``, a final status (``succeeded``, ``failed``, ``cancelled``) or ``error``;
    ``job`` is the job's state (None for ``error``, whose ``data`` holds the detail). ``id`` is the
    server's event id when it sends one, else one derived from the state, so a resumed stream can skip
    the event it already delivered.
    """

    event: str
    id: str
    data: dict[str, Any] = Field(default_factory=dict)
    job: Job | None = None

    @property
    def final(self) -> bool:
        return self.event in FINISHED or self.event == "error"
