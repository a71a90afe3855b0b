"""SQLAlchemy Core tables of the ``notifications`` schema, and the repositories over them."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Row,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.pages import keyset_page
from shop_kernel.sql import restored_from, update_versioned
from shop_kernel.unit_of_work import UnitOfWork
from shop_notifications.application.ports import AttemptOutcome, RecordSent
from shop_notifications.domain.model import Delivery, Template

metadata = MetaData(schema="notifications")


def this_process() -> str:
    """Who makes an attempt: host and process (the delivery log says which was cut off)."""
    return f"{socket.gethostname()}:{os.getpid()}"


deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("event_id", Uuid, nullable=False),
    Column("template", Text, nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("recipient", Text, nullable=True),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),
    UniqueConstraint("event_id", "template", name="deliveries_once_per_event"),
    CheckConstraint("status IN ('pending', 'sent', 'failed')", name="deliveries_status_known"),
    Index("deliveries_newest", "created_at", "id"),
    Index("deliveries_by_recipient", "recipient", "created_at", "id"),
    Index("deliveries_by_user", "user_id"),
)

# Each attempt of a delivery; one without an end was cut off between the send and its outcome.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("delivery_id", Uuid, ForeignKey("notifications.deliveries.id", ondelete="CASCADE")),
    Column("number", Integer, nullable=False),
    Column("process", Text, nullable=False),  # host:pid of the worker process
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("outcome", Text, nullable=True),
    PrimaryKeyConstraint("delivery_id", "number"),
    CheckConstraint(
        "outcome IN ('sent', 'failed', 'later')", name="delivery_attempts_outcome_known"
    ),
)


def delivery_from_row(row: Row[Any]) -> Delivery:
    return restored_from(row, Delivery)


def _values(delivery: Delivery) -> dict[str, Any]:
    return {
        "recipient": delivery.recipient,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "lease_until": delivery.lease_until,
        "sent_at": delivery.sent_at,
    }


class SqlDeliveries:
    """The ``Deliveries`` log: each call runs in the given unit of work's transaction."""

    async def claim(
        self, uow: UnitOfWork, event_id: uuid.UUID, template: Template, user_id: uuid.UUID
    ) -> Delivery:
        new = Delivery.of(event_id, template, user_id)
        await uow.connection.execute(
            insert(deliveries)
            .values(
                id=new.id,
                event_id=event_id,
                template=template,
                user_id=user_id,
                created_at=new.created_at,
                version=1,
                **_values(new),
            )
            .on_conflict_do_nothing(constraint="deliveries_once_per_event")
        )
        row = (await uow.connection.execute(
            select(deliveries)
            .where(deliveries.c.event_id == event_id, deliveries.c.template == template)
            .with_for_update()
        )).one()  # fmt: skip
        return delivery_from_row(row)

    async def lock(self, uow: UnitOfWork, delivery_id: uuid.UUID) -> Delivery:
        row = (await uow.connection.execute(
            select(deliveries).where(deliveries.c.id == delivery_id).with_for_update()
        )).one()  # fmt: skip
        return delivery_from_row(row)

    async def of_user(self, uow: UnitOfWork, user_id: uuid.UUID) -> list[Delivery]:
        rows = await uow.connection.execute(
            select(deliveries)
            .where(deliveries.c.user_id == user_id)
            .order_by(deliveries.c.id)
            .with_for_update()
        )
        return [delivery_from_row(row) for row in rows]

    async def save(self, uow: UnitOfWork, delivery: Delivery) -> None:
        await update_versioned(
            uow, deliveries, {"id": delivery.id}, delivery,
            _values(delivery), name=str(delivery.id),
        )  # fmt: skip

    async def log_attempt(self, uow: UnitOfWork, delivery: Delivery) -> None:
        await uow.connection.execute(
            insert(delivery_attempts).values(
                delivery_id=delivery.id, number=delivery.attempts, process=this_process(),
                started_at=func.now(),
            )
        )  # fmt: skip

    async def log_outcome(
        self, uow: UnitOfWork, delivery: Delivery, outcome: AttemptOutcome
    ) -> None:
        await uow.connection.execute(
            update(delivery_attempts)
            .where(
                delivery_attempts.c.delivery_id == delivery.id,
                delivery_attempts.c.number == delivery.attempts,
            )
            .values(outcome=outcome, ended_at=func.now())
        )


# The sent outcome in one statement: the delivery (unless an erasure dropped it meanwhile,
# which leaves it failed) and its attempt.
_SENT = text(
    "WITH sent AS ("
    " UPDATE notifications.deliveries SET status = 'sent', sent_at = now(), last_error = NULL,"
    " lease_until = NULL, version = version + 1 WHERE id = :delivery_id AND status = 'pending'"
    " RETURNING id)"
    " UPDATE notifications.delivery_attempts SET outcome = 'sent', ended_at = now()"
    " WHERE delivery_id = :delivery_id AND number = :number"
)


class SqlSentRecords:
    """Writes "sent" the moment the mail server took a mail: on a connection checked out
    before the send, in autocommit, one statement, so that a crash between the server's
    answer and the record (the one moment a mail can go twice) is as short as it can be."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def ready(self) -> AsyncGenerator[RecordSent]:
        async with self._engine.connect() as held:
            conn = await held.execution_options(isolation_level="AUTOCOMMIT")

            async def record(delivery: Delivery) -> None:
                await conn.execute(_SENT, {"delivery_id": delivery.id, "number": delivery.attempts})

            yield record


class DeliveryLog:
    """The admin's view of the deliveries, newest first (from the write store)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def page(
        self, *, recipient: str | None, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> tuple[list[Delivery], str | None]:
        query = select(deliveries)
        if recipient is not None:
            query = query.where(deliveries.c.recipient == recipient.lower())
        if after is not None:
            query = query.where(tuple_(deliveries.c.created_at, deliveries.c.id) < after)
        query = query.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
        async with self._engine.connect() as conn:
            read = [delivery_from_row(row) for row in await conn.execute(query.limit(limit + 1))]
        return keyset_page(read, limit, key=lambda d: f"{d.created_at.isoformat()}|{d.id}")
