"""SQLAlchemy Core tables of the ``catalog`` schema, and the repositories over them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    any_,
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import IntegrityError

from shop_catalog.domain.model import (
    Product,
    Shortfall,
    SkuTaken,
    StockReservation,
    is_sku,
)
from shop_catalog_contract import ProductFacts, ProductSnapshot
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
from shop_kernel.wire import Amount

metadata = MetaData(schema="catalog")

# The fields of the snapshot the table keeps in a form of its own (below).
APART = ("price", "stock")

products = Table(
    "products",
    metadata,
    # The product's snapshot, a column a field ...
    *state_columns(ProductSnapshot, key="sku", apart=APART),
    # ... but its price and its stock, as two columns each.
    Column("price_amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("price_amount >= 0", name="products_price_not_negative"),
    CheckConstraint("0 <= reserved AND reserved <= on_hand", name="products_reserved_in_stock"),
)

# Every change of on_hand or reserved, with who caused it and what resulted.
stock_movements = Table(
    "stock_movements",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("sku", Text, ForeignKey("catalog.products.sku"), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("on_hand_delta", Integer, nullable=False),
    Column("reserved_delta", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("order_id", Uuid, nullable=True),
)

reservations = Table(
    "reservations",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("status", Text, nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("shortfalls", JSONB, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(
        "status IN ('reserved', 'failed', 'released')", name="reservations_status_known"
    ),
)


def product_from_row(row: Columns) -> Product:
    columns = columns_of(row)
    price = {"amount": columns["price_amount"], "currency": columns["currency"]}
    return restored_from(columns, Product, price=price)


# The hot path's statements (a reservation's, a release's), compiled once (shop_kernel.driver).
_LOCK_PRODUCTS = Compiled(
    select(products)
    .where(products.c.sku == any_(bindparam("skus", type_=ARRAY(Text))))
    .order_by(products.c.sku)
    .with_for_update()
)
_MOVEMENT = Compiled(
    insert(stock_movements).values(
        {
            column: bindparam(column, type_=stock_movements.c[column].type)
            for column in ("sku", "actor", "on_hand_delta", "reserved_delta", "reason",
                           "on_hand", "reserved", "order_id")
        }
    )
)  # fmt: skip
_LOCK_RESERVATION = Compiled(
    select(reservations)
    .where(reservations.c.order_id == bindparam("order_id", type_=Uuid))
    .with_for_update()
)


def _product_values(product: Product) -> dict[str, Any]:
    return {
        **state_values(product, products, apart=APART),
        "price_amount": product.price.amount,
        "currency": product.price.currency,
        "on_hand": product.on_hand,
        "reserved": product.reserved,
    }


class SqlProducts:
    """The ``Products`` repository: each call runs in the given unit of work's transaction."""

    async def get(self, uow: UnitOfWork, sku: str) -> Product | None:
        row = (await uow.connection.execute(select(products).where(products.c.sku == sku))).first()
        return _tracked(uow, product_from_row(row)) if row is not None else None

    async def lock(self, uow: UnitOfWork, skus: Iterable[str]) -> dict[str, Product]:
        """Load and lock the products in sku order: concurrent reservations never deadlock."""
        wanted = sorted({sku for sku in skus if is_sku(sku)})
        rows = await _LOCK_PRODUCTS.rows(await uow.driver(), skus=wanted) if wanted else []
        return {row["sku"]: _tracked(uow, product_from_row(row)) for row in rows}

    async def add(self, uow: UnitOfWork, product: Product) -> None:
        values = {**_product_values(product), "version": 1}
        product.saved_as(1)
        try:
            await uow.write(products, product, values=values)
        except IntegrityError as error:
            if "products_pkey" in str(error.orig):
                raise SkuTaken(product.sku) from None
            raise

    async def save(self, uow: UnitOfWork, product: Product) -> None:
        await update_versioned(
            uow, products, {"sku": product.sku}, product, _product_values(product),
            name=product.sku,
        )  # fmt: skip

    async def record_movement(
        self,
        uow: UnitOfWork,
        product: Product,
        *,
        actor: str,
        on_hand_delta: int = 0,
        reserved_delta: int = 0,
        reason: str,
        order_id: uuid.UUID | None = None,
    ) -> None:
        await _MOVEMENT.run(
            await uow.driver(), sku=product.sku, actor=actor, on_hand_delta=on_hand_delta,
            reserved_delta=reserved_delta, reason=reason, on_hand=product.on_hand,
            reserved=product.reserved, order_id=order_id,
        )  # fmt: skip


def _tracked(uow: UnitOfWork, product: Product) -> Product:
    uow.track(product)
    return product


class SqlReservations:
    """The ``Reservations`` repository, in the given unit of work's transaction."""

    async def lock(self, uow: UnitOfWork, order_id: uuid.UUID) -> StockReservation | None:
        row = await _LOCK_RESERVATION.first(await uow.driver(), order_id=order_id)
        if row is None:
            return None
        reservation = StockReservation(
            order_id=row["order_id"],
            lines=dict(row["lines"]),
            status=row["status"],
            shortfalls=[Shortfall(**item) for item in row["shortfalls"]],
            version=row["version"],
        )
        uow.track(reservation)
        return reservation

    async def add(self, uow: UnitOfWork, reservation: StockReservation) -> bool:
        """Store a new reservation; False if the order has one already (a concurrent delivery)."""
        values = {
            "order_id": reservation.order_id,
            "status": reservation.status,
            "lines": reservation.lines,
            "shortfalls": [vars(shortfall) for shortfall in reservation.shortfalls],
            "version": 1,
        }
        reservation.saved_as(1)
        written = await uow.write(reservations, reservation, values=values, mode="insert-or-skip")
        return written == 1

    async def save(self, uow: UnitOfWork, reservation: StockReservation) -> None:
        await update_versioned(
            uow, reservations, {"order_id": reservation.order_id}, reservation,
            {"status": reservation.status}, name=str(reservation.order_id),
        )  # fmt: skip


_FACTS = Compiled(
    select(
        products.c.sku, products.c.name, products.c.price_amount, products.c.currency,
        products.c.is_active,
    ).where(products.c.sku == any_(bindparam("skus", type_=ARRAY(Text))))
)  # fmt: skip


class SqlCatalogQueries:
    """The catalog's facts for orders, straight from the write store (never stale), read in
    the caller's transaction: a request never holds one connection while it waits for a
    second (with as many such requests as the pool has connections, each would wait for
    the others until the pool's timeout)."""

    async def products(self, uow: UnitOfWork, skus: Iterable[str]) -> dict[str, ProductFacts]:
        wanted = sorted({sku for sku in skus if is_sku(sku)})  # others cannot exist
        if not wanted:
            return {}
        rows = await _FACTS.rows(await uow.driver(), skus=wanted)
        return {
            row["sku"]: ProductFacts(
                sku=row["sku"],
                name=row["name"],
                price=Amount(row["price_amount"], row["currency"]),
                is_active=row["is_active"],
            )
            for row in rows
        }
