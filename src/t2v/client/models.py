"""Typed results of the t2v REST API: what it returns today, tolerant of fields added later."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FINISHED = ("succeeded", "failed", "cancelled")


class Result(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class Progress(Result):
    stage: str | None = None
    step: int = 0
    total: int | None = None
    fraction: float = 0.0
    eta_s: float | None = None


class JobFile(Result):
    format: str
    file: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    url: str | None = None


class JobResult(Result):
    files: list[JobFile] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None


class Job(Result):
    """A job as ``GET /v1/videos/{id}`` returns it."""

    id: str
    status: str
    priority: int = 0
    queue_position: int | None = None
    progress: Progress = Field(default_factory=Progress)
    request: dict[str, Any] = Field(default_factory=dict)
    result: JobResult | None = None
    error: str | None = None
    attempts: int = 0
    cancel_requested: bool = False
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    webhook: dict[str, Any] | None = None
    links: dict[str, str] = Field(default_factory=dict)

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


class Model(Result):
    id: str
    family: str | None = None
    description: str | None = None
    tasks: list[str] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(default_factory=dict)
    license: str | None = None
    vram_gb: float | None = None


class ModelList(Result):
    """``GET /v1/models``: the registered models and the server's default model."""

    default: str | None = None
    items: list[Model] = Field(default_factory=list)


class Asset(Result):
    """An uploaded image (``POST /v1/assets``)."""

    id: str
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    content_type: str | None = None
    size: int | None = None
    filename: str | None = None
    created_at: str | None = None
