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
    #: Most jobs of this key running at once (None: no cap).
    max_running: int | None = None
    #: Highest priority of this key's jobs (None: the server's ``T2V_MAX_PRIORITY``).
    max_priority: int | None = None
    #: The webhook signing secret (``whsec_...``): None for a key made before keys had their own.
    webhook_secret: str | None = None
    #: The secret before the last rotation, which still signs beside the new one until ``webhook_previous_until``.
    webhook_secret_previous: str | None = None
    webhook_previous_until: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def __repr__(self) -> str:  # never the webhook secrets, whatever prints a row
        return f"ApiKeyRow(id={self.id!r}, name={self.name!r}, prefix={self.prefix!r}, revoked={self.revoked})"

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a webhook of this key is signed with now: the current one, and the previous one while a
        rotation's overlap lasts (empty for a key without a secret of its own)."""
        out = [self.webhook_secret] if self.webhook_secret else []
        if self.webhook_secret_previous and self.webhook_previous_until and now < self.webhook_previous_until:
            out.append(self.webhook_secret_previous)
        return out


class Keys:
    """API keys: create, list, look up, rotate the webhook secret, revoke."""

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
        webhook_secret: str | None = None,
        max_running: int | None = None,
        max_priority: int | None = None,
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
            webhook_secret=webhook_secret,
            max_running=max_running,
            max_priority=max_priority,
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

    def rotate_webhook_secret(self, key_id: str, secret: str, previous_until: datetime) -> bool:
        """Make ``secret`` the active key's webhook secret; its old one (if any) keeps signing beside it until
        ``previous_until``. False when there is no such active key."""
        with self.db.write() as conn:
            row = conn.execute(select(api_keys.c.webhook_secret).where(
                api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))).first()
            if row is None:
                return False
            conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(
                webhook_secret=secret, webhook_secret_previous=row.webhook_secret,
                webhook_previous_until=previous_until if row.webhook_secret else None))
        return True

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False when there is no such key or it was revoked already."""
        with self.db.write() as conn:
            res = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return res.rowcount > 0
