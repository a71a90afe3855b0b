"""The inbox by age, for its retention (purged in batches like the outbox).

Deliveries that write the inbox wait while the index is built (seconds for millions of
rows); none fails. Each schema migrates in one transaction, which CREATE INDEX CONCURRENTLY
cannot run in.

Revision ID: messaging_0005
Revises: messaging_0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "messaging_0005"
down_revision: str | None = "messaging_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("inbox_processed_at", "inbox", ["processed_at"], schema="messaging")


def downgrade() -> None:
    op.drop_index("inbox_processed_at", table_name="inbox", schema="messaging")
