"""The answers kept for Idempotency-Keys, written with the effect of the request they answer.

Revision ID: messaging_0004
Revises: messaging_0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "messaging_0004"
down_revision: str | None = "messaging_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.Text(), nullable=False),
        sa.Column("key_digest", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("caller", "key_digest", name="idempotency_keys_pkey"),
        schema="messaging",
    )
    op.create_index(
        "idempotency_keys_expires_at", "idempotency_keys", ["expires_at"], schema="messaging"
    )


def downgrade() -> None:
    op.drop_index("idempotency_keys_expires_at", table_name="idempotency_keys", schema="messaging")
    op.drop_table("idempotency_keys", schema="messaging")
