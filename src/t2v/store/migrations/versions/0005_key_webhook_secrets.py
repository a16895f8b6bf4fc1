"""Per-key webhook signing secrets (``api_keys.webhook_secret`` and, while a rotation overlaps, the previous
one) and per-key running caps (``api_keys.max_running``).

Keys made before this revision have none: their webhooks stay signed with the server's secret until
``t2v keys rotate-webhook-secret`` gives them one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(100), nullable=True))
        batch.add_column(sa.Column("webhook_secret_previous", sa.String(100), nullable=True))
        batch.add_column(sa.Column("webhook_previous_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("max_running", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_running")
        batch.drop_column("webhook_previous_until")
        batch.drop_column("webhook_secret_previous")
        batch.drop_column("webhook_secret")
