"""The registry of running releases (their routes and event types, their processes), and
the outbox's parked events: those no running release knows.

Revision ID: messaging_0006
Revises: messaging_0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "messaging_0006"
down_revision: str | None = "messaging_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("release", sa.Text(), nullable=False),
        sa.Column(
            "first_seen", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("release"),
        schema="messaging",
    )  # fmt: skip
    op.create_table(
        "release_routes",
        sa.Column("release", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("subscriber", sa.Text(), nullable=False),
        sa.Column("queue_name", sa.Text(), nullable=False),
        sa.Column("actor_name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("release", "event_type", "subscriber", name="release_routes_pkey"),
        schema="messaging",
    )
    op.create_table(
        "release_events",
        sa.Column("release", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("release", "event_type", name="release_events_pkey"),
        schema="messaging",
    )
    op.create_table(
        "processes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("release", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="messaging",
    )  # fmt: skip
    op.create_index("processes_release", "processes", ["release"], schema="messaging")
    op.create_table(
        "route_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="route_generation_one_row"),
        sa.PrimaryKeyConstraint("id"),
        schema="messaging",
    )
    op.execute("INSERT INTO messaging.route_generation (id, value) VALUES (1, 0)")
    op.add_column(
        "outbox", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True),
        schema="messaging",
    )  # fmt: skip
    op.drop_index("outbox_unpublished", table_name="outbox", schema="messaging")
    op.create_index(
        "outbox_unpublished", "outbox", ["id"], schema="messaging",
        postgresql_where=sa.text("published_at IS NULL AND parked_at IS NULL"),
    )  # fmt: skip
    op.create_index(
        "outbox_parked", "outbox", ["event_type"], schema="messaging",
        postgresql_where=sa.text("parked_at IS NOT NULL"),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("outbox_parked", table_name="outbox", schema="messaging")
    op.drop_index("outbox_unpublished", table_name="outbox", schema="messaging")
    op.create_index(
        "outbox_unpublished", "outbox", ["id"], schema="messaging",
        postgresql_where=sa.text("published_at IS NULL"),
    )  # fmt: skip
    op.drop_column("outbox", "parked_at", schema="messaging")
    for table in ("route_generation", "processes", "release_events", "release_routes", "releases"):
        op.drop_table(table, schema="messaging")
