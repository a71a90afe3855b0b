"""Whom a kept Idempotency-Key answer is about (an account's registration answer names the
person), so that an erasure removes the answer with the rest of the account's data.

Revision ID: messaging_0007
Revises: messaging_0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "messaging_0007"
down_revision: str | None = "messaging_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "idempotency_keys", sa.Column("subject", sa.Text(), nullable=True), schema="messaging"
    )
    op.create_index(
        "idempotency_keys_by_subject", "idempotency_keys", ["subject"], schema="messaging",
        postgresql_where=sa.text("subject IS NOT NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("idempotency_keys_by_subject", table_name="idempotency_keys", schema="messaging")
    op.drop_column("idempotency_keys", "subject", schema="messaging")
