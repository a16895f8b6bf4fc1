"""Workers claiming jobs and giving them back, with a limit on tries.

``attempts`` counts the times a job was claimed. A job given back because of something that was not
its fault (its process died, a library failed to import, memory ran out while loading) goes back to the
queue, its ``error`` saying which attempt failed and why, until it has had ``max_attempts`` tries;
then it fails with a message that says so. Each decision is one write transaction (SQLite: BEGIN
IMMEDIATE; PostgreSQL: the rows are locked), so processes sharing the database agree on it.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, update

from .db import Database, utcnow
from .rows import get_job
from .tables import ApiKey, Job

__all__ = ["WORKER_STOPPED", "Claims", "final_failure", "held_by", "retry_note"]

jobs = Job.__table__
c = jobs.c
keys = ApiKey.__table__

#: Why a job held by a process that stopped answering goes back to the queue.
WORKER_STOPPED = "the worker process stopped during the job (killed or crashed)"


def retry_note(attempt: int, max_attempts: int | None, reason: str) -> str:
    """The ``error`` of a job queued again after a failed try."""
    of = f" of {max_attempts}" if max_attempts is not None else ""
    return f"attempt {attempt}{of} failed: {reason}; retrying"


def final_failure(attempts: int, reason: str) -> str:
    """The ``error`` of a job that used up its tries."""
    return f"failed after {attempts} attempt{'s' if attempts != 1 else ''}: {reason}"


def held_by(job_id: str, worker_id: str):
    """The job, while it is running for ``worker_id`` (the condition of every worker-side update)."""
    return and_(c.id == job_id, c.status == "running", c.worker_id == worker_id)


_BACK_IN_QUEUE = dict(status="queued", worker_id=None, heartbeat_at=None, stage=None, step=0, eta_s=None)


class Claims:
    """Claiming jobs: claim, give back, retry or fail a job."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim_next(self, worker_id: str, *, fair_window_s: float = 0.0, priority_across_keys: bool = False):
        """Take the next queued job (not paused) whose key is under its running cap (``api_keys.max_running``),
        mark it running for ``worker_id`` and count the attempt.

        With ``fair_window_s`` > 0 (the fair share): the key whose jobs had the least worker time in the last
        ``fair_window_s`` seconds goes next (so one key's long queue does not starve another's single job), and
        its own highest-priority job, oldest first, is the one taken; priority orders a key's own jobs, never
        one key's before another's. With ``priority_across_keys``, priority comes first across keys and the fair
        share decides among the keys' jobs of the top priority. Without a fair share: the highest priority,
        then the oldest. Never hands one job to two workers, nor a key more running jobs than its cap, across
        processes."""
        r = jobs.alias("r")
        running = select(func.count()).select_from(r).where(r.c.api_key_id == c.api_key_id,
                                                            r.c.status == "running").scalar_subquery()
        capped = select(keys.c.max_running).where(keys.c.id == c.api_key_id).scalar_subquery()
        under_cap = or_(c.api_key_id.is_(None), capped.is_(None), running < capped)
        waiting = and_(c.status == "queued", c.paused.is_(False), under_cap)
        for _ in range(100):
            with self.db.write() as conn:
                if fair_window_s > 0:
                    row = self._fairest(conn, waiting, fair_window_s, priority_across_keys)
                else:
                    stmt = select(c.id, c.api_key_id).where(waiting).order_by(c.priority.desc(), c.id.asc()).limit(1)
                    if self.db.dialect == "postgresql":
                        stmt = stmt.with_for_update(skip_locked=True, of=jobs)
                    row = conn.execute(stmt).first()
                if row is None:
                    return None
                job_id = row.id
                if row.api_key_id is not None and not self._key_has_room(conn, row.api_key_id):
                    continue  # another process took the key's last slot meanwhile
                now = utcnow()
                res = conn.execute(
                    update(jobs)
                    .where(c.id == job_id, c.status == "queued", c.paused.is_(False))
                    .values(
                        status="running",
                        worker_id=worker_id,
                        started_at=func.coalesce(c.started_at, literal(now, c.started_at.type)),
                        heartbeat_at=now,
                        attempts=c.attempts + 1,
                        updated_at=now,
                    )
                )
                if res.rowcount == 1:
                    return get_job(conn, job_id)
        return None  # pragma: no cover - only under pathological contention

    def _fairest(self, conn, waiting, window_s: float, priority_across_keys: bool = False):
        """(id, api_key_id) of the next job of the key with the least worker time since ``window_s`` seconds ago
        (running jobs count up to now): that key's highest-priority waiting job, oldest first. With
        ``priority_across_keys`` only the keys with jobs at the top priority compete. None when nothing waits."""
        if priority_across_keys:
            top = conn.execute(select(func.max(c.priority)).where(waiting)).scalar()
            if top is None:
                return None
            waiting = and_(waiting, c.priority == top)
        best: dict = {}  # key -> (its highest priority, the oldest job at it)
        for key_id, priority, first in conn.execute(
                select(c.api_key_id, c.priority, func.min(c.id)).where(waiting).group_by(c.api_key_id, c.priority)):
            held = best.get(key_id)
            if held is None or priority > held[0] or (priority == held[0] and first < held[1]):
                best[key_id] = (priority, first)
        if not best:
            return None
        firsts = {k: first for k, (_, first) in best.items()}
        if len(firsts) == 1:
            [(key_id, job_id)] = firsts.items()
            return SimpleNamespace(id=job_id, api_key_id=key_id)
        now = utcnow()
        since = now - timedelta(seconds=window_s)
        named = [k for k in firsts if k is not None]
        owner = or_(c.api_key_id.in_(named), c.api_key_id.is_(None)) if None in firsts else c.api_key_id.in_(named)
        used = dict.fromkeys(firsts, 0.0)
        for key_id, started, finished in conn.execute(
                select(c.api_key_id, c.started_at, c.finished_at).where(
                    owner, c.started_at.is_not(None), or_(c.finished_at.is_(None), c.finished_at >= since),
                    c.status.in_(("running", "succeeded", "failed", "cancelled")))):
            used[key_id] += max(0.0, ((finished or now) - max(started, since)).total_seconds())
        key_id = min(firsts, key=lambda k: (used[k], firsts[k]))
        return SimpleNamespace(id=firsts[key_id], api_key_id=key_id)

    def _key_has_room(self, conn, key_id: str) -> bool:
        """Whether the key may have one more running job, with its row locked (PostgreSQL) so two processes
        cannot both take its last slot (SQLite's write transaction is exclusive already)."""
        stmt = select(keys.c.max_running).where(keys.c.id == key_id)
        if self.db.dialect == "postgresql":
            stmt = stmt.with_for_update()
        cap = conn.execute(stmt).scalar()
        if cap is None:
            return True
        busy = conn.execute(select(func.count()).select_from(jobs).where(
            c.api_key_id == key_id, c.status == "running")).scalar()
        return busy < cap

    def fail_job(self, job_id: str, worker_id: str, error: str) -> bool:
        """running -> failed (the request's own fault: no retry); False when the job is not
        running for this worker."""
        now = utcnow()
        with self.db.write() as conn:
            res = conn.execute(
                update(jobs)
                .where(held_by(job_id, worker_id))
                .values(status="failed", error=error, finished_at=now, heartbeat_at=now, updated_at=now)
            )
        return res.rowcount > 0

    def retry_job(self, job_id: str, worker_id: str, error: str, *, max_attempts: int) -> str | None:
        """A try failed for a reason that is not the request's (``error``): the job goes back to the
        queue while it has had fewer than ``max_attempts`` tries, else it fails saying how many and
        why; a job whose cancel was requested is cancelled. Returns the new status, or None when the
        job is not running for this worker."""
        now = utcnow()
        with self.db.write() as conn:
            stmt = select(c.attempts, c.cancel_requested).where(held_by(job_id, worker_id))
            if self.db.dialect == "postgresql":
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).first()
            if row is None:
                return None
            values = self._give_back(row.attempts, row.cancel_requested, error, max_attempts, now)
            conn.execute(update(jobs).where(held_by(job_id, worker_id)).values(**values, updated_at=now))
            return values["status"]

    @staticmethod
    def _give_back(attempts: int, cancel_requested: bool, reason: str | None, max_attempts: int | None,
                   now) -> dict[str, Any]:
        """Column values for a running job handed back (``reason`` None: a clean shutdown, no try used)."""
        if cancel_requested:
            return dict(status="cancelled", worker_id=None, finished_at=now)
        if reason is None:
            return {**_BACK_IN_QUEUE, "attempts": max(attempts - 1, 0)}
        if max_attempts is not None and attempts >= max_attempts:
            return dict(status="failed", error=final_failure(attempts, reason), finished_at=now, heartbeat_at=now)
        return {**_BACK_IN_QUEUE, "error": retry_note(attempts, max_attempts, reason)}

    def _release(self, where, *, reason: str | None, max_attempts: int | None = None) -> list[str]:
        """Hand back the running jobs matching ``where`` (see :meth:`_give_back`). Returns the ids
        queued again."""
        where = and_(c.status == "running", where)
        now = utcnow()
        requeued = []
        with self.db.write() as conn:
            stmt = select(c.id, c.attempts, c.cancel_requested).where(where).order_by(c.id)
            if self.db.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            for r in conn.execute(stmt).all():
                values = self._give_back(r.attempts, r.cancel_requested, reason, max_attempts, now)
                conn.execute(update(jobs).where(where, c.id == r.id).values(**values, updated_at=now))
                if values["status"] == "queued":
                    requeued.append(r.id)
        return requeued

    def requeue_stale(self, stale_after_s: float, *, max_attempts: int | None = None,
                      dead_workers: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Running jobs without a heartbeat for ``stale_after_s`` seconds, or held by one of ``dead_workers``
        (their process died) go back to the queue, started_at kept; those that have had ``max_attempts`` tries
        fail instead (None: no limit). Returns the ids queued again."""
        cutoff = utcnow() - timedelta(seconds=stale_after_s)
        lost = or_(c.heartbeat_at.is_(None), c.heartbeat_at < cutoff)
        if dead_workers:
            lost = or_(lost, c.worker_id.in_(list(dead_workers)))
        return self._release(lost, reason=WORKER_STOPPED, max_attempts=max_attempts)

    def running_workers(self) -> list[str]:
        """The ids of the workers that hold running jobs."""
        with self.db.read() as conn:
            return list(conn.execute(select(c.worker_id).where(c.status == "running", c.worker_id.is_not(None))
                                     .distinct()).scalars())

    def requeue_worker(self, worker_id: str) -> list[str]:
        """Jobs held by a worker that shuts down cleanly go back to the queue; that try is not
        counted (the job did nothing wrong, it resumes from its checkpoint)."""
        return self._release(c.worker_id == worker_id, reason=None)
