"""The record outbox: finished jobs whose record has not reached the record store yet.

Ending a job (succeeded, failed or cancelled, by any path) leaves ``records_sent_at`` NULL on its row, so
the record is enqueued in the same transaction that ends the job: nothing is lost if the process dies
right after. A publisher sends pending records (an upsert keyed by the job id, so a record sent twice is
still stored once) and then marks them sent."""

from __future__ import annotations

from typing import Iterator

from sqlalchemy import func, select, update

from .db import Database, utcnow
from .rows import job_row
from .tables import FINISHED_STATUSES, Job

__all__ = ["Outbox"]

jobs = Job.__table__
c = jobs.c


class Outbox:
    """The records still to send to the record store."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def pending_records(self, limit: int = 50) -> list:
        """Finished jobs whose record is still to send, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(jobs).where(c.records_sent_at.is_(None), c.status.in_(FINISHED_STATUSES))
                .order_by(c.finished_at, c.id).limit(limit)
            ).all()
        return [job_row(r) for r in rows]

    def mark_records_sent(self, job_ids: list[str]) -> int:
        """Mark these jobs' records as sent (only while still finished: a job retried meanwhile stays out)."""
        if not job_ids:
            return 0
        with self.db.write() as conn:
            return conn.execute(
                update(jobs).where(c.id.in_(job_ids), c.status.in_(FINISHED_STATUSES))
                .values(records_sent_at=utcnow())
            ).rowcount

    def count_pending_records(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs).where(
                c.records_sent_at.is_(None), c.status.in_(FINISHED_STATUSES))).scalar() or 0)

    def iter_finished(self, batch: int = 200) -> Iterator:
        """Every finished job, oldest first, in batches (for exporting the whole history)."""
        after = ""
        while True:
            with self.db.read() as conn:
                rows = conn.execute(select(jobs).where(c.status.in_(FINISHED_STATUSES), c.id > after)
                                    .order_by(c.id).limit(batch)).all()
            if not rows:
                return
            for r in rows:
                yield job_row(r)
            after = rows[-1].id
