"""Batches: many jobs queued in one transaction under one id (``POST /v1/batches``, ``t2v batch``), idempotent
with an idempotency key, and their counts by state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from .db import Database, utcnow
from .ids import new_id
from .limits import Limits
from .tables import JOB_STATUSES, Batch, Job

__all__ = ["Batches"]

jobs, batches = Job.__table__, Batch.__table__
c, b = jobs.c, batches.c


class Batches:
    def __init__(self, db: Database, limits: Limits) -> None:
        self.db, self.limits = db, limits

    def create_batch(self, requests: list[dict[str, Any]], *, priority: int = 0, api_key_id: str | None = None,
                     idempotency_key: str | None = None, max_queued: int | None = None,
                     plans: list[dict[str, Any] | None] | None = None) -> tuple[str, bool]:
        """Queue ``requests`` (resolved; ``plans``: the plan each was admitted with) as one batch, all or none.
        ``(batch id, created)``: an idempotency key already used by this key returns its batch. With
        ``max_queued``, QueueFull when the key's queue would pass it."""
        plans = list(plans) if plans is not None else [None] * len(requests)
        if len(plans) != len(requests):
            raise ValueError(f"{len(plans)} plans for {len(requests)} requests")
        now = utcnow()
        batch_id = new_id()
        try:
            with self.db.write() as conn:
                if idempotency_key is not None and (earlier := self._find(conn, api_key_id, idempotency_key)):
                    return earlier, False
                if max_queued is not None and api_key_id is not None:
                    self.limits.check_queue(conn, api_key_id, max_queued, adding=len(requests))
                conn.execute(insert(batches).values(id=batch_id, api_key_id=api_key_id,
                                                    idempotency_key=idempotency_key, created_at=now))
                rows = []
                for request, plan in zip(requests, plans):
                    prompt = request.get("prompt")
                    rows.append(dict(id=new_id(), status="queued", priority=int(priority), request=request, plan=plan,
                                     prompt=prompt.lower() if isinstance(prompt, str) else None,
                                     api_key_id=api_key_id, batch_id=batch_id, created_at=now, updated_at=now))
                conn.execute(insert(jobs), rows)
                return batch_id, True
        except IntegrityError:  # another transaction used the same idempotency key first
            with self.db.read() as conn:
                earlier = self._find(conn, api_key_id, idempotency_key)
            if earlier is None:
                raise
            return earlier, False

    @staticmethod
    def _find(conn, api_key_id: str | None, key: str) -> str | None:
        owner = b.api_key_id.is_(None) if api_key_id is None else b.api_key_id == api_key_id
        return conn.execute(select(b.id).where(owner, b.idempotency_key == key)).scalar()

    def get_batch(self, batch_id: str) -> dict[str, Any] | None:
        """``{id, api_key_id, created_at, job_ids, counts}`` (counts by state, paused apart from queued)."""
        with self.db.read() as conn:
            row = conn.execute(select(batches).where(b.id == batch_id)).first()
            if row is None:
                return None
            members = conn.execute(select(c.id, c.status, c.paused).where(c.batch_id == batch_id)
                                   .order_by(c.id)).all()
        counts = dict.fromkeys((*JOB_STATUSES, "paused"), 0)
        for m in members:
            counts["paused" if m.paused and m.status == "queued" else m.status] += 1
        return {"id": row.id, "api_key_id": row.api_key_id, "created_at": row.created_at,
                "job_ids": [m.id for m in members], "counts": counts, "total": len(members)}

    def count_batches(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(batches)).scalar_one())
