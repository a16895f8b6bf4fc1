"""All SQL of t2v: jobs (queue, progress, results, webhooks) here, and the parts the repository is composed of
(:class:`Keys`, :class:`Claims`, :class:`Limits`, :class:`Assets`, :class:`Outbox`, :class:`Controls`,
:class:`Batches`), each reached through its attribute (``repo.keys.create_key(...)``).

Methods return frozen dataclasses, never ORM objects; each runs one short transaction,
so one :class:`Repository` (one Engine) can be shared by all threads of a process, and
several processes can work on the same database (SQLite file or PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from .assets import Assets
from .batches import Batches
from .claims import Claims, held_by
from .controls import Controls
from .db import Database, utcnow
from .ids import new_id
from .keys import ApiKeyRow, Keys
from .limits import Limits, QueueFull
from .outbox import Outbox
from .rows import JobRow, get_job, job_row
from .tables import FINISHED_STATUSES, JOB_STATUSES, Job

__all__ = ["ApiKeyRow", "JobRow", "QueueFull", "Repository"]

jobs = Job.__table__
c = jobs.c


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _webhook_due() -> tuple:
    """A finished job whose callback is neither delivered nor given up."""
    return (c.status.in_(FINISHED_STATUSES), c.callback_url.is_not(None),
            or_(c.webhook_status.is_(None), c.webhook_status == "pending"))


def _lease_free(now: datetime):
    """No process holds a live delivery lease."""
    return or_(c.webhook_lease_until.is_(None), c.webhook_lease_until < now)


class Repository:
    """Job and API-key storage over one SQLAlchemy Engine (see :func:`t2v.store.open_database`), composed of its
    parts, each over the same :class:`~t2v.store.db.Database`: the job rows and their webhook deliveries here, and
    ``keys``, ``claims``, ``limits``, ``assets``, ``outbox``, ``controls`` and ``batches``, each a small class of its
    own called through its attribute."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.db = Database(engine)
        self.dialect = self.db.dialect
        self.keys, self.claims, self.limits = Keys(self.db), Claims(self.db), Limits(self.db)
        self.assets, self.outbox, self.controls = Assets(self.db), Outbox(self.db), Controls(self.db)
        self.batches = Batches(self.db, self.limits)

    # ---- helpers -------------------------------------------------------------------------

    def _get(self, conn: Connection, job_id: str) -> JobRow | None:
        return get_job(conn, job_id)

    def _find_idempotent(self, conn: Connection, api_key_id: str | None, key: str) -> JobRow | None:
        owner = c.api_key_id.is_(None) if api_key_id is None else c.api_key_id == api_key_id
        return job_row(conn.execute(select(jobs).where(owner, c.idempotency_key == key)).first())

    def _update(self, where, **values: Any) -> bool:
        values.setdefault("updated_at", utcnow())
        with self.db.write() as conn:
            return conn.execute(update(jobs).where(where).values(**values)).rowcount > 0

    # ---- submit and read -----------------------------------------------------------------

    def create_job(
        self,
        request: dict[str, Any],
        *,
        priority: int = 0,
        api_key_id: str | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        max_queued: int | None = None,
        remixed_from: str | None = None,
        plan: dict[str, Any] | None = None,
    ) -> tuple[JobRow, bool]:
        """Queue a job (``request`` resolved, ``plan`` the plan it was admitted with). With ``idempotency_key``, an
        existing job with the same (api_key_id, idempotency_key) is returned instead: ``(job, created)``. With
        ``max_queued`` (and a key), :class:`QueueFull` when the key has that many queued jobs, counted in the
        same transaction as the insert."""
        prompt = request.get("prompt")
        now = utcnow()
        values = dict(
            id=new_id(),
            status="queued",
            priority=int(priority),
            request=request,
            prompt=prompt.lower() if isinstance(prompt, str) else None,
            api_key_id=api_key_id,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
            created_at=now,
            updated_at=now,
            remixed_from=remixed_from,
            plan=plan,
        )
        try:
            with self.db.write() as conn:
                if idempotency_key is not None:
                    existing = self._find_idempotent(conn, api_key_id, idempotency_key)
                    if existing is not None:
                        return existing, False
                if max_queued is not None and api_key_id is not None:
                    self.limits.check_queue(conn, api_key_id, max_queued)
                conn.execute(insert(jobs).values(**values))
                return self._get(conn, values["id"]), True
        except IntegrityError:
            # Another transaction inserted the same idempotency key first (PostgreSQL).
            if idempotency_key is None:
                raise
            with self.db.read() as conn:
                existing = self._find_idempotent(conn, api_key_id, idempotency_key)
            if existing is None:
                raise
            return existing, False

    def find_idempotent(self, api_key_id: str | None, key: str) -> JobRow | None:
        """The job created earlier with this idempotency key (by this API key, or without one)."""
        with self.db.read() as conn:
            return self._find_idempotent(conn, api_key_id, key)

    def get_job(self, job_id: str) -> JobRow | None:
        with self.db.read() as conn:
            return self._get(conn, job_id)

    def _filters(self, status: str | None, api_key_id: str | None) -> list:
        where = []
        if status is not None:
            where.append(c.status == status)
        if api_key_id is not None:
            where.append(c.api_key_id == api_key_id)
        return where

    def list_jobs(
        self,
        *,
        status: str | None = None,
        api_key_id: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
        query: str | None = None,
        order: str = "desc",
    ) -> list[JobRow]:
        """Newest first (``order="asc"``: oldest first). ``cursor``: the last id of the previous page.
        ``query``: a case-insensitive substring of the prompt."""
        where = self._filters(status, api_key_id)
        if cursor:
            where.append(c.id > cursor if order == "asc" else c.id < cursor)
        if query:
            # Folded in Python on both sides: SQL lower() is ASCII-only on SQLite and
            # depends on the database locale on PostgreSQL.
            where.append(c.prompt.like(f"%{_escape_like(query.lower())}%", escape="\\"))
        stmt = select(jobs).where(*where).order_by(c.id.asc() if order == "asc" else c.id.desc()).limit(max(0, int(limit)))
        with self.db.read() as conn:
            return [job_row(r) for r in conn.execute(stmt)]

    def count_jobs(self, *, status: str | None = None, api_key_id: str | None = None) -> int:
        stmt = select(func.count()).select_from(jobs).where(*self._filters(status, api_key_id))
        with self.db.read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def counts_by_status(self) -> dict[str, int]:
        """Number of jobs per status; every status is present."""
        counts = dict.fromkeys(JOB_STATUSES, 0)
        with self.db.read() as conn:
            for status, n in conn.execute(select(c.status, func.count()).group_by(c.status)):
                counts[status] = int(n)
        return counts

    def queue_position(self, job_id: str) -> int | None:
        """1-based place among queued jobs in claim order (paused ones are not in line); None unless queued and
        not paused."""
        with self.db.read() as conn:
            row = conn.execute(select(c.status, c.priority, c.paused).where(c.id == job_id)).first()
            if row is None or row.status != "queued" or row.paused:
                return None
            ahead = conn.execute(
                select(func.count())
                .select_from(jobs)
                .where(
                    c.status == "queued",
                    c.paused.is_(False),
                    or_(c.priority > row.priority, and_(c.priority == row.priority, c.id < job_id)),
                )
            ).scalar_one()
        return int(ahead) + 1

    def delete_job(self, job_id: str) -> bool:
        with self.db.write() as conn:
            return conn.execute(delete(jobs).where(c.id == job_id)).rowcount > 0

    # ---- workers -------------------------------------------------------------------------

    def update_progress(
        self,
        job_id: str,
        worker_id: str,
        *,
        stage: str | None,
        step: int,
        total: int,
        eta_s: float | None = None,
    ) -> bool:
        """Record progress; only while the job is running and held by ``worker_id``."""
        now = utcnow()
        return self._update(
            held_by(job_id, worker_id), stage=stage, step=step, total=total, eta_s=eta_s, heartbeat_at=now, updated_at=now
        )

    def heartbeat(self, job_id: str, worker_id: str) -> bool:
        with self.db.write() as conn:
            res = conn.execute(update(jobs).where(held_by(job_id, worker_id)).values(heartbeat_at=utcnow()))
        return res.rowcount > 0

    def finish_job(self, job_id: str, worker_id: str, *, result: dict[str, Any], files: list[dict[str, Any]]) -> bool:
        """running -> succeeded, once; False when the job is not running for this worker."""
        now = utcnow()
        return self._update(
            held_by(job_id, worker_id),
            status="succeeded",
            result=result,
            files=files,
            error=None,  # a note left by a failed earlier try
            step=c.total,
            eta_s=0.0,
            finished_at=now,
            heartbeat_at=now,
            updated_at=now,
        )

    def request_cancel(self, job_id: str, *, purge: bool = False) -> JobRow | None:
        """Queued: cancelled at once. Running: ``cancel_requested`` is set and the worker
        stops it. Finished: unchanged. ``purge`` sets ``purge_requested`` (any status): whichever
        process ends or finds the job removes its files. Returns the row after the change (None: no job)."""
        now = utcnow()
        with self.db.write() as conn:
            if purge:
                conn.execute(update(jobs).where(c.id == job_id).values(purge_requested=True, updated_at=now))
            res = conn.execute(
                update(jobs)
                .where(c.id == job_id, c.status == "queued")
                .values(status="cancelled", cancel_requested=True, finished_at=now, updated_at=now)
            )
            if res.rowcount == 0:
                conn.execute(
                    update(jobs)
                    .where(c.id == job_id, c.status == "running")
                    .values(cancel_requested=True, updated_at=now)
                )
            return self._get(conn, job_id)

    def mark_cancelled(self, job_id: str, worker_id: str) -> bool:
        """running -> cancelled, by the worker that holds the job."""
        now = utcnow()
        return self._update(held_by(job_id, worker_id), status="cancelled", finished_at=now, updated_at=now)

    def is_cancel_requested(self, job_id: str) -> bool:
        with self.db.read() as conn:
            return bool(conn.execute(select(c.cancel_requested).where(c.id == job_id)).scalar())

    # ---- webhooks ------------------------------------------------------------------------

    def set_webhook_status(self, job_id: str, status: str, *, attempts: int, error: str | None = None) -> bool:
        """Record a callback delivery state: pending, delivered or failed."""
        with self.db.write() as conn:
            res = conn.execute(
                update(jobs)
                .where(c.id == job_id)
                .values(webhook_status=status, webhook_attempts=attempts, webhook_error=error)
            )
        return res.rowcount > 0

    # A delivery is leased to one process (``webhook_lease_owner``) until ``webhook_lease_until``:
    # claimed with one conditional UPDATE, renewed before each attempt, released when it ends.
    def claim_webhook(self, job_id: str, owner: str, lease_s: float) -> JobRow | None:
        """Lease the job's pending delivery to ``owner`` for ``lease_s`` seconds, unless another
        lease is live (or it is delivered or failed). The row after the claim, or None."""
        now = utcnow()
        with self.db.write() as conn:
            res = conn.execute(
                update(jobs)
                .where(c.id == job_id, *_webhook_due(), _lease_free(now))
                .values(webhook_status="pending", webhook_lease_owner=owner,
                        webhook_lease_until=now + timedelta(seconds=lease_s))
            )
            return self._get(conn, job_id) if res.rowcount == 1 else None

    def start_webhook_attempt(self, job_id: str, owner: str, lease_s: float) -> int | None:
        """Count one attempt and renew ``owner``'s lease for ``lease_s`` seconds; the attempt
        number, or None when ``owner`` no longer holds the delivery (do not send)."""
        now = utcnow()
        with self.db.write() as conn:
            res = conn.execute(
                update(jobs)
                .where(c.id == job_id, c.webhook_lease_owner == owner, c.webhook_status == "pending")
                .values(webhook_attempts=c.webhook_attempts + 1, webhook_lease_until=now + timedelta(seconds=lease_s))
            )
            if res.rowcount != 1:
                return None
            return int(conn.execute(select(c.webhook_attempts).where(c.id == job_id)).scalar_one())

    def end_webhook_attempt(self, job_id: str, owner: str, status: str, *, error: str | None = None,
                            hold_s: float | None = None) -> bool:
        """Record an outcome by the lease holder. ``pending`` keeps the lease for ``hold_s`` more
        seconds (the wait before the next attempt); ``delivered``/``failed`` end it."""
        values: dict[str, Any] = dict(webhook_status=status, webhook_error=error)
        if status == "pending":
            values["webhook_lease_until"] = utcnow() + timedelta(seconds=hold_s or 0.0)
        else:
            values.update(webhook_lease_owner=None, webhook_lease_until=None)
        with self.db.write() as conn:
            res = conn.execute(update(jobs).where(c.id == job_id, c.webhook_lease_owner == owner).values(**values))
        return res.rowcount > 0

    def release_webhook(self, job_id: str, owner: str) -> bool:
        """Give up ``owner``'s lease (shutting down): another process may resume the delivery at once."""
        with self.db.write() as conn:
            res = conn.execute(
                update(jobs)
                .where(c.id == job_id, c.webhook_lease_owner == owner)
                .values(webhook_lease_owner=None, webhook_lease_until=None)
            )
        return res.rowcount > 0

    def pending_webhooks(self) -> list[JobRow]:
        """Finished jobs with a callback_url whose callback is not delivered or given up, and
        that no process holds a live delivery lease on."""
        stmt = select(jobs).where(*_webhook_due(), _lease_free(utcnow())).order_by(c.id)
        with self.db.read() as conn:
            return [job_row(r) for r in conn.execute(stmt)]
