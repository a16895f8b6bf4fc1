"""The record outbox: ``jobs.records_sent_at`` (NULL: a finished job's record still to send to MongoDB).

Jobs that had finished before this revision count as sent: they are history, which ``t2v records export``
backfills on request.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("records_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_jobs_records_sent_at_status", ["records_sent_at", "status"])
    op.execute("UPDATE jobs SET records_sent_at = finished_at WHERE status IN ('succeeded', 'failed', 'cancelled')")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_records_sent_at_status")
        batch.drop_column("records_sent_at")
