"""The queue's own fields of a job body (not what to make, but how the service handles it): idempotency,
priority and the webhook, declared once for every REST body that queues a job."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from t2v.requests.base import knob

PRIORITY_RANGE = (-100, 100)  # a job's priority; a key's own bound (``t2v keys create --max-priority``) lies inside


class JobOptions(BaseModel):
    """How a queued job is handled: shared by POST /v1/videos, /v1/sequences and /v1/post."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    idempotency_key: str | None = knob(None, max_length=200, cli="", help=(
        "A key of yours: the same key (for the same API key) returns the job it made first instead of a new one."))
    priority: int = knob(0, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1], cli="", help=(
        "Queue priority, -100 to 100: higher runs first among your own jobs (a key's jobs go up to its highest "
        "priority, 10 unless the key says otherwise; across keys the fair share decides)."))
    callback_url: str | None = knob(None, pattern=r"^https?://", max_length=2000, cli="", help=(
        "A webhook: POSTed the job (signed) when it finishes."))

    @classmethod
    def names(cls) -> set[str]:
        return set(cls.model_fields)
