"""Password reset tokens, kept only as SHA-256 digests: at most one per account.

Revision ID: users_0003
Revises: users_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "users_0003"
down_revision: str | None = "users_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "password_reset_tokens",
        sa.Column("digest", sa.Text(), primary_key=True),
        sa.Column(
            "user_id", sa.Uuid(), sa.ForeignKey("users.users.id", ondelete="CASCADE"),
            nullable=False, unique=True,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        schema="users",
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("password_reset_tokens", schema="users")
