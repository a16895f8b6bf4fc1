"""API-key storage: the keys' rows (only a hash of each key is stored)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from .db import Database, utcnow
from .ids import new_id
from .tables import ApiKey

__all__ = ["ApiKeyRow", "Keys", "utcnow"]  # utcnow: db's, named here as it always was

api_keys = ApiKey.__table__


@dataclass(frozen=True)
class ApiKeyRow:
    """One row of ``api_keys``; the plaintext key is never stored, only its sha256."""

    id: str
    name: str
    prefix: str
    key_hash: str
    rate_limit: str | None
    max_queued: int | None
    created_at: datetime
    revoked_at: datetime | None
    #: Largest frames x width x height x steps per request (None: only the server-wide limit applies).
    max_cost: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class Keys:
    """API keys: create, list, look up, revoke."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_key(
        self,
        name: str,
        key_hash: str,
        prefix: str,
        *,
        rate_limit: str | None = None,
        max_queued: int | None = None,
        max_cost: int | None = None,
    ) -> ApiKeyRow:
        """Store a new key; ``ValueError`` when a key with the same hash exists."""
        values = dict(
            id=new_id(),
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            rate_limit=rate_limit,
            max_queued=max_queued,
            max_cost=max_cost,
            created_at=utcnow(),
            revoked_at=None,
        )
        try:
            with self.db.write() as conn:
                conn.execute(insert(api_keys).values(**values))
        except IntegrityError as exc:
            raise ValueError("an API key with this hash already exists") from exc
        return ApiKeyRow(**values)

    def list_keys(self) -> list[ApiKeyRow]:
        """All keys, revoked ones included, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.id)).all()
        return [ApiKeyRow(**r._mapping) for r in rows]

    def get_key(self, key_id: str) -> ApiKeyRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return ApiKeyRow(**row._mapping) if row else None

    def get_key_by_hash(self, key_hash: str) -> ApiKeyRow | None:
        """The active (not revoked) key with this sha256, if any."""
        with self.db.read() as conn:
            row = conn.execute(
                select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
            ).first()
        return ApiKeyRow(**row._mapping) if row else None

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such key or it was revoked already."""
        with self.db.write() as conn:
            res = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return res.rowcount > 0
