"""Outbox rows found by aggregate, for erasing an account's personal data from its events.

Revision ID: messaging_0003
Revises: messaging_0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "messaging_0003"
down_revision: str | None = "messaging_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("outbox_aggregate_id", "outbox", ["aggregate_id"], schema="messaging")


def downgrade() -> None:
    op.drop_index("outbox_aggregate_id", table_name="outbox", schema="messaging")
