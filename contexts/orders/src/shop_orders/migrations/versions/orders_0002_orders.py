"""Orders: one row per order, its lines a JSONB array, saved under a version check.

Revision ID: orders_0002
Revises: orders_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "orders_0002"
down_revision: str | None = "orders_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("lines", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("rejection_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'pending', 'confirmed', 'rejected', 'cancelled')",
            name="orders_status_known",
        ),
        sa.CheckConstraint("total_amount >= 0", name="orders_total_not_negative"),
        sa.PrimaryKeyConstraint("id"),
        schema="orders",
    )
    op.create_index(
        "orders_customer_created",
        "orders",
        ["customer_id", "created_at"],
        unique=False,
        schema="orders",
    )


def downgrade() -> None:
    op.drop_index("orders_customer_created", table_name="orders", schema="orders")
    op.drop_table("orders", schema="orders")
