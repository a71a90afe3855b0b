"""SQLAlchemy Core tables of the kernel's ``messaging`` schema: the outbox and the inbox, and
the answers kept for Idempotency-Keys (written in the same transaction as the request's effect).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from shop_kernel.migrations import MigrationTarget

metadata = MetaData(schema="messaging")

# Written in the same transaction as the change it reports; the relay publishes and marks it.
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", Text, nullable=False),
    Column("aggregate_id", Text, nullable=False),
    Column("aggregate_version", BigInteger, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("request_id", Text),
    Column("traceparent", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
    # Set when no running release knows the event's type: kept, not relayed (messaging.registry).
    Column("parked_at", DateTime(timezone=True)),
    Index(
        "outbox_unpublished",
        "id",
        postgresql_where=text("published_at IS NULL AND parked_at IS NULL"),
    ),
    Index("outbox_parked", "event_type", postgresql_where=text("parked_at IS NOT NULL")),
    Index("outbox_published_at", "published_at", postgresql_where=text("published_at IS NOT NULL")),
    # Erasure blanks personal data in an aggregate's events (forget_in_outbox).
    Index("outbox_aggregate_id", "aggregate_id"),
)

# One row per (subscriber, event) it has handled, written in the handler's own transaction.
inbox = Table(
    "inbox",
    metadata,
    Column("subscriber", Text, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("subscriber", "event_id", name="inbox_pkey"),
    Index("inbox_processed_at", "processed_at"),  # the retention's range
)

# The answer to a creating request that carried an Idempotency-Key, per caller and key.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("caller", Text, nullable=False),
    Column("key_digest", Text, nullable=False),  # sha256 of the path and the key
    Column("fingerprint", Text, nullable=False),  # sha256 of the body
    Column("status", Integer, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # Whom the answer is about, when it names a person (see idempotency.concerning).
    Column("subject", Text, nullable=True),
    PrimaryKeyConstraint("caller", "key_digest", name="idempotency_keys_pkey"),
    Index("idempotency_keys_expires_at", "expires_at"),
    Index("idempotency_keys_by_subject", "subject", postgresql_where=text("subject IS NOT NULL")),
)

# The registry of running releases and what they declare (messaging.registry).
releases = Table(
    "releases",
    metadata,
    Column("release", Text, primary_key=True),
    Column("first_seen", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

release_routes = Table(
    "release_routes",
    metadata,
    Column("release", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("subscriber", Text, nullable=False),
    Column("queue_name", Text, nullable=False),
    Column("actor_name", Text, nullable=False),
    # Its actor takes several events a message (the relay sends them so).
    Column("batch", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("release", "event_type", "subscriber", name="release_routes_pkey"),
)

# Every event type a release publishes or subscribes to: one it knows is never parked.
release_events = Table(
    "release_events",
    metadata,
    Column("release", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    PrimaryKeyConstraint("release", "event_type", name="release_events_pkey"),
)

processes = Table(
    "processes",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("release", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("processes_release", "release"),
)

# One row: bumped whenever a process registers or leaves, so relays know to reload routes.
route_generation = Table(
    "route_generation",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="route_generation_one_row"),
)

MIGRATIONS = MigrationTarget(
    name="messaging", metadata=metadata, script_location=Path(__file__).parent / "migrations"
)
