"""Every attempt to send a delivery: when, by which process, and how it ended.

An attempt whose end was never recorded was cut off (a crash between the mail server taking
the mail and the outcome being written): the one case in which the mail can go out twice.

Revision ID: notifications_0003
Revises: notifications_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifications_0003"
down_revision: str | None = "notifications_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_attempts",
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("process", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('sent', 'failed', 'later')", name="delivery_attempts_outcome_known"
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["notifications.deliveries.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("delivery_id", "number"),
        schema="notifications",
    )


def downgrade() -> None:
    op.drop_table("delivery_attempts", schema="notifications")
