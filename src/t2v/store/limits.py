"""State that every server process on one database shares: per-key rate buckets, open event-stream
leases, the queue quota check, and purge requests.

Each check-and-change runs in one write transaction. On SQLite that transaction holds the database
write lock from BEGIN (BEGIN IMMEDIATE); on PostgreSQL the key's ``api_keys`` row (or the rate bucket
row) is locked first, so concurrent processes take turns and N processes allow what one does.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .ids import new_id
from .db import Database, utcnow
from .tables import FINISHED_STATUSES, ApiKey, EventStream, Job, RateBucket

__all__ = ["Limits", "QueueFull"]

api_keys = ApiKey.__table__
jobs = Job.__table__
buckets = RateBucket.__table__
streams = EventStream.__table__


class QueueFull(Exception):
    """An API key already has ``limit`` queued jobs (raised by ``create_job(max_queued=...)``)."""

    def __init__(self, queued: int, limit: int, adding: int = 1) -> None:
        super().__init__(f"this key already has {queued} queued jobs (limit {limit})" if adding == 1 else
                         f"this key has {queued} queued jobs: {adding} more would pass its limit of {limit}")
        self.queued, self.limit = queued, limit


class Limits:
    """Rate buckets, stream leases, the queue quota, purges."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- helpers -------------------------------------------------------------------------

    def _lock_key(self, conn: Connection, api_key_id: str) -> None:
        """Serialise quota checks of one key: on PostgreSQL lock its row until the transaction ends
        (SQLite's write transaction already holds the whole database)."""
        if self.db.dialect == "postgresql":
            conn.execute(select(api_keys.c.id).where(api_keys.c.id == api_key_id).with_for_update(key_share=True))

    def _insert_ignore(self, table, **values):
        """INSERT that does nothing when the primary key exists already."""
        dialect_insert = postgresql_insert if self.db.dialect == "postgresql" else sqlite_insert
        return dialect_insert(table).values(**values).on_conflict_do_nothing()

    def check_queue(self, conn: Connection, api_key_id: str, max_queued: int, adding: int = 1) -> None:
        """Inside create_job's transaction: raise :class:`QueueFull` when ``adding`` more jobs would pass the key's
        quota."""
        self._lock_key(conn, api_key_id)
        queued = conn.execute(
            select(func.count()).select_from(jobs).where(jobs.c.api_key_id == api_key_id, jobs.c.status == "queued")
        ).scalar_one()
        if queued + adding > max_queued:
            raise QueueFull(int(queued), max_queued, adding)

    # ---- rate limits ---------------------------------------------------------------------

    def take_rate_token(self, api_key_id: str, count: int, per_s: float) -> float | None:
        """Take one token from the key's bucket (``count`` tokens, refilled at ``count / per_s`` a second).
        Returns None when the request may go ahead, else the seconds until the next token."""
        rate = count / per_s
        with self.db.write() as conn:
            conn.execute(self._insert_ignore(buckets, api_key_id=api_key_id, tokens=float(count), updated_at=utcnow()))
            stmt = select(buckets.c.tokens, buckets.c.updated_at).where(buckets.c.api_key_id == api_key_id)
            if self.db.dialect == "postgresql":
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).one()
            now = max(utcnow(), row.updated_at)  # read after the lock; never step the bucket's clock back
            tokens = min(float(count), row.tokens + (now - row.updated_at).total_seconds() * rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            conn.execute(update(buckets).where(buckets.c.api_key_id == api_key_id).values(tokens=tokens, updated_at=now))
        return None if allowed else (1.0 - tokens) / rate

    # ---- event streams -------------------------------------------------------------------

    def acquire_stream(self, api_key_id: str, cap: int, lease_s: float) -> str | None:
        """Lease a slot for an open event stream of this key, valid ``lease_s`` seconds: its id, or
        None when the key already holds ``cap`` unexpired leases. Expired leases are removed."""
        now = utcnow()
        with self.db.write() as conn:
            self._lock_key(conn, api_key_id)
            mine = streams.c.api_key_id == api_key_id
            conn.execute(delete(streams).where(mine, streams.c.expires_at <= now))
            if conn.execute(select(func.count()).select_from(streams).where(mine)).scalar_one() >= cap:
                return None
            lease_id = new_id()
            conn.execute(insert(streams).values(id=lease_id, api_key_id=api_key_id,
                                                expires_at=now + timedelta(seconds=lease_s)))
        return lease_id

    def renew_stream(self, lease_id: str, lease_s: float) -> bool:
        """Extend a lease to ``lease_s`` seconds from now; False when it expired and was removed."""
        with self.db.write() as conn:
            res = conn.execute(
                update(streams).where(streams.c.id == lease_id).values(expires_at=utcnow() + timedelta(seconds=lease_s))
            )
        return res.rowcount > 0

    def release_stream(self, lease_id: str) -> bool:
        with self.db.write() as conn:
            return conn.execute(delete(streams).where(streams.c.id == lease_id)).rowcount > 0

    def count_streams(self, api_key_id: str) -> int:
        """Unexpired stream leases of a key."""
        stmt = select(func.count()).select_from(streams).where(streams.c.api_key_id == api_key_id,
                                                               streams.c.expires_at > utcnow())
        with self.db.read() as conn:
            return int(conn.execute(stmt).scalar_one())

    # ---- purge ---------------------------------------------------------------------------

    def pending_purges(self) -> list[str]:
        """Ids of finished jobs whose files were asked to be purged and are not yet."""
        stmt = select(jobs.c.id).where(jobs.c.purge_requested, jobs.c.status.in_(FINISHED_STATUSES)).order_by(jobs.c.id)
        with self.db.read() as conn:
            return list(conn.execute(stmt).scalars())

    def purge_done(self, job_id: str) -> bool:
        """A finished job's files were removed: forget them and clear ``purge_requested``."""
        with self.db.write() as conn:
            res = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status.in_(FINISHED_STATUSES))
                .values(files=[], purge_requested=False, updated_at=utcnow())
            )
        return res.rowcount > 0
