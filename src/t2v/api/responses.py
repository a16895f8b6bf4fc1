"""What the API answers, as pydantic models: ``/openapi.json`` describes every response, and clients
(:mod:`t2v.client`) read the same types. Extra fields are kept (a newer server may add some)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Progress(Open):
    stage: str | None = Field(None, description="load, encode_prompt, denoise, decode, export or done")
    step: int = 0
    total: int = 0
    fraction: float = Field(0.0, ge=0, le=1)
    eta_s: float | None = None


class FileOut(Open):
    format: str = Field(..., description="mp4, webm, gif, png, json, contact_sheet or denoise_grid")
    file: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    url: str | None = Field(None, description="Where to fetch it (None for a PNG frames folder)")


class ResultOut(Open):
    files: list[FileOut]
    metadata: dict[str, Any] | None = Field(None, description="The reproducibility record")


class WebhookOut(Open):
    status: str | None = None
    attempts: int = 0
    error: str | None = None


class Links(Open):
    self: str
    events: str
    content: str
    metadata: str


class JobOut(Open):
    """A job: GET /v1/videos/{id}, POST /v1/videos, DELETE /v1/videos/{id}, and each item of a list."""

    id: str
    status: Status
    priority: int = 0
    queue_position: int | None = None
    progress: Progress
    request: dict[str, Any]
    result: ResultOut | None = None
    error: str | None = None
    attempts: int = 0
    cancel_requested: bool = False
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    webhook: WebhookOut | None = None
    links: Links


class JobPage(Open):
    items: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page (None: the last page)")


class ModelOut(Open):
    id: str
    family: str
    description: str = ""
    tasks: list[str] = Field(default_factory=list, description="t2v, i2v, image")
    defaults: dict[str, Any]
    license: str = ""
    license_url: str = ""
    license_notice: str = ""
    download_gb: float = 0.0
    vram_gb: float = 0.0
    aliases: list[str] = Field(default_factory=list)
    bundled: bool = False
    base_model: str | None = None


class ModelList(Open):
    default: str
    items: list[ModelOut]
