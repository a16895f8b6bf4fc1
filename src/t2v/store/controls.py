"""Steering queued and running jobs: change a queued job (its priority, its request), pause and resume.

A paused job keeps its status (``queued``) with ``paused`` set: workers skip it until it is resumed, across
restarts and processes. Pausing a running job sets ``paused`` too; its worker sees it at the next step, hands
the job back to the queue (its checkpoint kept, the try not counted) and it stays there, paused, until resumed,
then resumes from that checkpoint. Each change is one write transaction, conditioned on the job's state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from .db import Database, utcnow
from .rows import get_job
from .tables import FINISHED_STATUSES, Job

__all__ = ["Controls", "NotChangeable"]

jobs = Job.__table__
c = jobs.c


class NotChangeable(Exception):
    """The job is not in a state the change applies to; the message says which state it is in."""


class Controls:
    def __init__(self, db: Database) -> None:
        self.db = db

    def change_queued(self, job_id: str, *, priority: int | None = None, request: dict[str, Any] | None = None,
                      plan: dict[str, Any] | None = None):
        """Set a queued job's priority and/or request (already checked) with the plan it was admitted with (a
        new request replaces the old plan, with ``plan`` or none). NotChangeable unless it is queued."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        if priority is not None:
            values["priority"] = int(priority)
        if request is not None:
            prompt = request.get("prompt")
            values.update(request=request, prompt=prompt.lower() if isinstance(prompt, str) else None, plan=plan)
        with self.db.write() as conn:
            if conn.execute(update(jobs).where(c.id == job_id, c.status == "queued").values(**values)).rowcount:
                return get_job(conn, job_id)
            job = get_job(conn, job_id)
        raise NotChangeable(f"job {job_id} is {job.status if job else 'gone'}; only a queued job can be changed")

    def pause(self, job_id: str):
        """Pause a queued or running job (idempotent). NotChangeable once it has finished."""
        with self.db.write() as conn:
            done = conn.execute(update(jobs).where(c.id == job_id, c.status.not_in(FINISHED_STATUSES))
                                .values(paused=True, updated_at=utcnow())).rowcount
            job = get_job(conn, job_id)
        if not done:
            raise NotChangeable(f"job {job_id} is {job.status if job else 'gone'}; only a queued or running job "
                                "can be paused")
        return job

    def resume(self, job_id: str):
        """Resume a paused job (back in the queue, or a running one's pause withdrawn). NotChangeable unless it
        is paused."""
        with self.db.write() as conn:
            done = conn.execute(update(jobs).where(c.id == job_id, c.paused.is_(True),
                                                   c.status.not_in(FINISHED_STATUSES))
                                .values(paused=False, updated_at=utcnow())).rowcount
            job = get_job(conn, job_id)
        if not done:
            state = "gone" if job is None else job.status
            raise NotChangeable(f"job {job_id} is {state} and not paused; only a paused job can be resumed")
        return job

    def is_pause_requested(self, job_id: str) -> bool:
        with self.db.read() as conn:
            return bool(conn.execute(select(c.paused).where(c.id == job_id)).scalar())

    def stop_asked(self, job_id: str) -> bool:
        """Whether the job's worker should stop it: a cancel or a pause was asked (by any process)."""
        with self.db.read() as conn:
            row = conn.execute(select(c.cancel_requested, c.paused).where(c.id == job_id)).first()
        return bool(row and (row.cancel_requested or row.paused))
