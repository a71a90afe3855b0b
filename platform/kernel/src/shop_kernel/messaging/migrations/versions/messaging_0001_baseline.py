"""Baseline: the ``messaging`` schema exists and this context owns it.

Revision ID: messaging_0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "messaging_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute('CREATE SCHEMA IF NOT EXISTS "messaging"')


def downgrade() -> None:
    # The schema also holds this context's version table; dropping it is an operator's call.
    pass
