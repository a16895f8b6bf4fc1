"""The video a job remixes (``jobs.remixed_from``: the OpenAI-style Videos API's ``remixed_from_video_id``), and
paused jobs (``jobs.paused``: workers skip them until they are resumed).

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
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("remixed_from", sa.String(26), nullable=True))
        batch.add_column(sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("paused")
        batch.drop_column("remixed_from")
