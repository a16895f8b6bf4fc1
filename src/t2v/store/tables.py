"""Database tables (SQLAlchemy 2 declarative models).

These describe the schema; the schema itself is created and changed only by the Alembic
migrations in ``t2v/store/migrations`` (run by :func:`t2v.store.db.open_database`).
Keep the two in step: ``tests/store`` compares the migrated database with this metadata.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ApiKey",
    "Asset",
    "Base",
    "EventStream",
    "RateBucket",
    "JOB_STATUSES",
    "FINISHED_STATUSES",
    "Batch",
    "Job",
    "JsonType",
    "UTCDateTime",
    "WEBHOOK_STATUSES",
    "metadata",
]

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
WEBHOOK_STATUSES = ("pending", "delivered", "failed")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: JSON everywhere, stored as JSONB on PostgreSQL.
JsonType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """``DateTime(timezone=True)`` that always hands back timezone-aware UTC datetimes.

    SQLite keeps no zone: values are converted to UTC before they are stored (so text
    comparison orders them correctly) and marked UTC when read back.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = metadata


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    rate_limit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    max_queued: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Largest frames x width x height x steps one request of this key may ask for (None: the server's limit).
    max_cost: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Most jobs of this key running at once, across every worker and process (None: no cap).
    max_running: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Highest priority this key may give its jobs (None: the server's ``T2V_MAX_PRIORITY``).
    max_priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The key's webhook signing secret (Standard Webhooks ``whsec_...``); None for keys made before there were
    #: per-key secrets (their webhooks are signed with the server's secret until the key's secret is rotated).
    webhook_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: The secret before the last rotation, still signing beside the new one until ``webhook_previous_until``.
    webhook_secret_previous: Mapped[str | None] = mapped_column(String(100), nullable=True)
    webhook_previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    request: Mapped[dict[str, Any]] = mapped_column(JsonType, nullable=False)
    #: ``request["prompt"].lower()``, kept for searching (``list_jobs(query=...)``).
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_key_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True, index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    step: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    eta_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    files: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    webhook_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    webhook_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    webhook_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Purge asked for while the job ran: whichever process finishes or finds the job removes its files.
    purge_requested: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    #: A webhook delivery in flight is leased to one process until this time (sent once across processes).
    webhook_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    webhook_lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The record outbox: a finished job whose record has not reached the record store (MongoDB) yet has
    #: NULL here. Ending a job is what enqueues its record (same row, same transaction).
    records_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The job this one remixes (the same request with a new prompt; the OpenAI-style API's remix).
    remixed_from: Mapped[str | None] = mapped_column(String(26), nullable=True)
    #: The batch the job was queued in (``POST /v1/batches``), if any.
    batch_id: Mapped[str | None] = mapped_column(String(26), nullable=True, index=True)
    #: Paused: a queued job is skipped by workers until resumed; a running one is handed back at its next step.
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=text("false"))
    #: The plan the job was admitted with (:meth:`t2v.runner.plan.RunPlan.to_dict`): its worker keeps it on the
    #: same machine and plans again, saying so in the record, on another. None: admitted with nothing to plan.
    plan: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)

    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key"),
        # SQL NULLs are distinct, so the constraint above does not cover jobs without a key.
        Index(
            "ix_jobs_idempotency_key_anonymous",
            "idempotency_key",
            unique=True,
            sqlite_where=text("api_key_id IS NULL AND idempotency_key IS NOT NULL"),
            postgresql_where=text("api_key_id IS NULL AND idempotency_key IS NOT NULL"),
        ),
        Index("ix_jobs_status_priority_id", "status", "priority", "id"),
        Index("ix_jobs_records_sent_at_status", "records_sent_at", "status"),
        CheckConstraint(f"status IN ({_in(JOB_STATUSES)})", name="status"),
        CheckConstraint(
            f"webhook_status IS NULL OR webhook_status IN ({_in(WEBHOOK_STATUSES)})", name="webhook_status"
        ),
    )


class RateBucket(Base):
    """A key's token bucket for its request rate, shared by every server process."""

    __tablename__ = "rate_buckets"

    api_key_id: Mapped[str] = mapped_column(String(26), ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class EventStream(Base):
    """An open ``/events`` stream of a key, leased until ``expires_at`` (renewed while it stays open)."""

    __tablename__ = "event_streams"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False, index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Batch(Base):
    """Jobs queued together (``POST /v1/batches``, ``t2v batch``): their rows name it in ``jobs.batch_id``."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    api_key_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True, index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key"),)


class Asset(Base):
    """A file a key uploaded (image-to-video's first frame), kept at ``path`` under the data dir ($T2V_HOME)."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    #: The owner (None: uploaded while the server ran without keys). Its assets go with the key.
    api_key_id: Mapped[str | None] = mapped_column(
        String(26), ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True
    )
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    #: The uploaded file's name, sanitized (shown to its owner only; the file on disk is named by ``id``).
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    #: Relative to the data dir: ``assets/<id>.<ext>``.
    path: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_assets_api_key_id_sha256", "api_key_id", "sha256"),)
