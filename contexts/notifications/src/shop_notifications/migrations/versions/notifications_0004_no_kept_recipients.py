"""Recipients are no longer kept: a mail asks the users context for the address when it is
written, so no copy of an address or a name waits here for an erasure.

Revision ID: notifications_0004
Revises: notifications_0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifications_0004"
down_revision: str | None = "notifications_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("recipients", schema="notifications")


def downgrade() -> None:
    op.create_table(
        "recipients",
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("erased", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        schema="notifications",
    )
