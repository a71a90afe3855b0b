"""SQLAlchemy Core tables of the ``orders`` schema, and the repository over them.

An order is one row: its lines (at most 100) are a JSONB array in the order they were
added, so every save is a single versioned UPDATE.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, get_args

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from shop_kernel.driver import Compiled
from shop_kernel.sql import (
    Columns,
    columns_of,
    restored_from,
    state_columns,
    state_values,
    update_versioned,
)
from shop_kernel.unit_of_work import UnitOfWork
from shop_orders.domain.model import Order, OrderStatus
from shop_orders_contract import OrderSnapshot

metadata = MetaData(schema="orders")
_STATUSES = ", ".join(f"'{status}'" for status in get_args(OrderStatus))
# The fields of the snapshot the table keeps in a form of its own (below).
APART = ("lines", "total")

orders = Table(
    "orders",
    metadata,
    # The order's snapshot, a column a field ...
    *state_columns(OrderSnapshot, key="id", apart=APART),
    # ... but its lines and total, kept in the order's currency: each line's unit price (its
    # total is the domain's to compute) and the total's amount.
    Column("currency", Text, nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("total_amount", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    CheckConstraint(f"status IN ({_STATUSES})", name="orders_status_known"),
    CheckConstraint("total_amount >= 0", name="orders_total_not_negative"),
    Index("orders_customer_created", "customer_id", "created_at"),
    # The pending-timeout's range: only the orders waiting for their stock.
    Index("orders_pending_since", "updated_at", postgresql_where=text("status = 'pending'")),
)

_LOCK = Compiled(select(orders).where(orders.c.id == bindparam("order_id")).with_for_update())
# Locked as they are found, skipping those another transaction holds (a batch of stock
# outcomes confirming them): the sweep waits for no one, so no one's locks wait for it in turn.
_PENDING_SINCE = (
    select(orders.c.id)
    .where(orders.c.status == "pending", orders.c.updated_at < bindparam("before"))
    .order_by(orders.c.updated_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


def order_from_row(row: Columns) -> Order:
    columns = columns_of(row)
    lines = [
        {**line, "unit_price": {"amount": line["unit_price"], "currency": columns["currency"]}}
        for line in columns["lines"]
    ]
    return restored_from(columns, Order, lines=lines)


def _values(order: Order) -> dict[str, Any]:
    return {
        **state_values(order, orders, apart=APART),
        "currency": order.currency,
        "lines": [
            {"sku": line.sku, "name": line.name, "unit_price": line.unit_price.amount,
             "quantity": line.quantity}
            for line in order.lines
        ],
        "total_amount": order.total.amount,
    }  # fmt: skip


class SqlOrders:
    """The ``Orders`` repository: each call runs in the given unit of work's transaction."""

    async def lock(self, uow: UnitOfWork, order_id: uuid.UUID) -> Order | None:
        row = await _LOCK.first(await uow.driver(), order_id=order_id)
        if row is None:
            return None
        order = order_from_row(row)
        uow.track(order)
        return order

    async def add(self, uow: UnitOfWork, order: Order) -> None:
        order.saved_as(1)
        await uow.write(orders, order, values={**_values(order), "version": 1})

    async def save(self, uow: UnitOfWork, order: Order) -> None:
        await update_versioned(
            uow, orders, {"id": order.id}, order, _values(order),
            name=str(order.id),
        )  # fmt: skip

    async def pending_since(self, uow: UnitOfWork, before: datetime, limit: int) -> list[uuid.UUID]:
        found = await uow.connection.execute(_PENDING_SINCE, {"before": before, "limit": limit})
        return list(found.scalars())
