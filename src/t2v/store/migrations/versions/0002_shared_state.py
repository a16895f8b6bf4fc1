"""State shared by server processes: purge requests, webhook delivery leases, per-key cost limits,
rate-limit buckets and open event streams.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("purge_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch.add_column(sa.Column("webhook_lease_until", _TS, nullable=True))
        batch.add_column(sa.Column("webhook_lease_owner", sa.String(64), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("max_cost", sa.BigInteger(), nullable=True))
    op.create_table(
        "rate_buckets",
        sa.Column("api_key_id", sa.String(26), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_rate_buckets_api_key_id_api_keys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("api_key_id", name=op.f("pk_rate_buckets")),
    )
    op.create_table(
        "event_streams",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("api_key_id", sa.String(26), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_event_streams_api_key_id_api_keys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_streams")),
    )
    op.create_index(op.f("ix_event_streams_api_key_id"), "event_streams", ["api_key_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_event_streams_api_key_id"), table_name="event_streams")
    op.drop_table("event_streams")
    op.drop_table("rate_buckets")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_cost")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("webhook_lease_owner")
        batch.drop_column("webhook_lease_until")
        batch.drop_column("purge_requested")
