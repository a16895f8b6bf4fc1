"""The frozen rows the repository returns: a job (:class:`JobRow`), never an ORM object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from .db import utcnow
from .tables import FINISHED_STATUSES, Job

jobs = Job.__table__


@dataclass(frozen=True)
class JobRow:
    """One row of ``jobs``. Datetimes are timezone-aware UTC."""

    id: str
    status: str
    priority: int
    request: dict[str, Any]
    #: ``request["prompt"]`` lower-cased, for search; show ``request["prompt"]`` to people.
    prompt: str | None
    api_key_id: str | None
    idempotency_key: str | None
    callback_url: str | None
    stage: str | None
    step: int
    total: int
    eta_s: float | None
    result: dict[str, Any] | None
    files: list[dict[str, Any]] | None
    error: str | None
    attempts: int
    worker_id: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    updated_at: datetime
    webhook_status: str | None
    webhook_attempts: int
    webhook_error: str | None
    purge_requested: bool = False
    webhook_lease_until: datetime | None = None
    webhook_lease_owner: str | None = None
    records_sent_at: datetime | None = None
    remixed_from: str | None = None
    paused: bool = False
    batch_id: str | None = None
    #: The plan the job was admitted with (:meth:`t2v.runner.plan.RunPlan.to_dict`; None: nothing to plan).
    plan: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def eta_now(self, now: datetime | None = None) -> float | None:
        """Seconds left as of ``now``: the worker's ETA less the time since it wrote it (running jobs; workers
        write progress a few times a second at most, and once as a decode starts)."""
        if self.eta_s is None or self.status != "running":
            return self.eta_s
        since = ((now or utcnow()) - self.updated_at).total_seconds()
        return round(max(self.eta_s - max(since, 0.0), 0.0), 1)


def job_row(row) -> JobRow | None:
    return JobRow(**row._mapping) if row is not None else None


def get_job(conn, job_id: str) -> JobRow | None:
    """The job ``job_id`` read in ``conn``'s transaction."""
    return job_row(conn.execute(select(jobs).where(jobs.c.id == job_id)).first())
