"""Orders waiting for their stock, by how long: the range the pending timeout reads.

Revision ID: orders_0003
Revises: orders_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "orders_0003"
down_revision: str | None = "orders_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "orders_pending_since", "orders", ["updated_at"], schema="orders",
        postgresql_where=sa.text("status = 'pending'"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("orders_pending_since", table_name="orders", schema="orders")
