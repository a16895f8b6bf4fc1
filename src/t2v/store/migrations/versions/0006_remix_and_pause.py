"""The video a job remixes (``jobs.remixed_from``: the OpenAI-style Videos API's ``remixed_from_video_id``), and
paused jobs (``jobs.paused``: workers skip them until they are resumed), and batches (``batches``, one row a
batch; ``jobs.batch_id``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("api_key_id", sa.String(26), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_batches_api_key_id_api_keys"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("api_key_id", "idempotency_key", name=op.f("uq_batches_api_key_id_idempotency_key")),
    )
    op.create_index("ix_batches_api_key_id", "batches", ["api_key_id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(26), nullable=True))
        batch.create_index("ix_jobs_batch_id", ["batch_id"])
        batch.add_column(sa.Column("remixed_from", sa.String(26), nullable=True))
        batch.add_column(sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_batch_id")
        batch.drop_column("batch_id")
        batch.drop_column("paused")
        batch.drop_column("remixed_from")
    op.drop_index("ix_batches_api_key_id", table_name="batches")
    op.drop_table("batches")
