"""The delivery log (one row per event and template) and the recipients kept from users' events.

Revision ID: notifications_0002
Revises: notifications_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notifications_0002"
down_revision: str | None = "notifications_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name="deliveries_status_known"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "template", name="deliveries_once_per_event"),
        schema="notifications",
    )
    op.create_index(
        "deliveries_by_recipient",
        "deliveries",
        ["recipient", "created_at", "id"],
        unique=False,
        schema="notifications",
    )
    op.create_index(
        "deliveries_by_user", "deliveries", ["user_id"], unique=False, schema="notifications"
    )
    op.create_index(
        "deliveries_newest",
        "deliveries",
        ["created_at", "id"],
        unique=False,
        schema="notifications",
    )
    op.create_table(
        "recipients",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("erased", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
        schema="notifications",
    )


def downgrade() -> None:
    op.drop_table("recipients", schema="notifications")
    op.drop_index("deliveries_newest", table_name="deliveries", schema="notifications")
    op.drop_index("deliveries_by_user", table_name="deliveries", schema="notifications")
    op.drop_index("deliveries_by_recipient", table_name="deliveries", schema="notifications")
    op.drop_table("deliveries", schema="notifications")
