"""Routes whose subscriber takes its events in batches (one message carries several), so a
relay of a release that knows batches sends them so, and one of the release before sends
them one by one, which the batch actor takes too.

Revision ID: messaging_0008
Revises: messaging_0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "messaging_0008"
down_revision: str | None = "messaging_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "release_routes",
        sa.Column("batch", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema="messaging",
    )


def downgrade() -> None:
    op.drop_column("release_routes", "batch", schema="messaging")
