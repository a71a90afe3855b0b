"""SQLAlchemy Core tables of the ``orders`` schema, and the repository over them.

An order is one row: its lines (at most 100) are a JSONB array in the order they were
added, so every save is a single versioned UPDATE.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    Uuid,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from shop_kernel.domain import Money
from shop_kernel.sql import update_versioned
from shop_kernel.unit_of_work import UnitOfWork
from shop_orders.domain.model import Order, OrderLine

metadata = MetaData(schema="orders")

orders = Table(
    "orders",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("total_amount", BigInteger, nullable=False),
    Column("rejection_reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    CheckConstraint(
        "status IN ('draft', 'pending', 'confirmed', 'rejected', 'cancelled')",
        name="orders_status_known",
    ),
    CheckConstraint("total_amount >= 0", name="orders_total_not_negative"),
    Index("orders_customer_created", "customer_id", "created_at"),
    # The pending-timeout's range: only the orders waiting for their stock.
    Index("orders_pending_since", "updated_at", postgresql_where=text("status = 'pending'")),
)

_LOCK = select(orders).where(orders.c.id == bindparam("order_id")).with_for_update()
_PENDING_SINCE = (
    select(orders.c.id)
    .where(orders.c.status == "pending", orders.c.updated_at < bindparam("before"))
    .order_by(orders.c.updated_at)
    .limit(bindparam("limit"))
)


def _lines(order: Order) -> list[dict[str, Any]]:
    return [
        {"sku": line.sku, "name": line.name, "unit_price": line.unit_price.amount,
         "quantity": line.quantity}
        for line in order.lines.values()
    ]  # fmt: skip


def order_from_row(row: Row[Any]) -> Order:
    return Order(
        id=row.id,
        customer_id=row.customer_id,
        currency=row.currency,
        status=row.status,
        lines={
            line["sku"]: OrderLine(
                line["sku"],
                line["name"],
                Money(line["unit_price"], row.currency),
                line["quantity"],
            )
            for line in row.lines
        },
        rejection_reason=row.rejection_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def _values(order: Order) -> dict[str, Any]:
    return {
        "status": order.status,
        "lines": _lines(order),
        "total_amount": order.total.amount,
        "rejection_reason": order.rejection_reason,
        "updated_at": order.updated_at,
    }


class SqlOrders:
    """The ``Orders`` repository: each call runs in the given unit of work's transaction."""

    async def lock(self, uow: UnitOfWork, order_id: uuid.UUID) -> Order | None:
        row = (await uow.connection.execute(_LOCK, {"order_id": order_id})).first()
        if row is None:
            return None
        order = order_from_row(row)
        uow.track(order)
        return order

    async def add(self, uow: UnitOfWork, order: Order) -> None:
        await uow.connection.execute(
            insert(orders).values(
                id=order.id, customer_id=order.customer_id, currency=order.currency,
                created_at=order.created_at, version=1, **_values(order),
            )
        )  # fmt: skip
        order.saved_as(1)
        uow.track(order)

    async def save(self, uow: UnitOfWork, order: Order) -> None:
        await update_versioned(
            uow.connection, orders, orders.c.id == order.id, order, _values(order),
            name=str(order.id),
        )  # fmt: skip

    async def pending_since(self, uow: UnitOfWork, before: datetime, limit: int) -> list[uuid.UUID]:
        found = await uow.connection.execute(_PENDING_SINCE, {"before": before, "limit": limit})
        return list(found.scalars())
