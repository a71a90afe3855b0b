"""SQLAlchemy Core tables of the ``catalog`` schema, and the repositories over them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    Uuid,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_catalog.application.ports import (
    CatalogUnitOfWork,
    Products,
    Reservations,
)
from shop_catalog.domain.model import (
    Product,
    Shortfall,
    Sku,
    SkuTaken,
    StockReservation,
    is_sku,
)
from shop_catalog_contract import ProductFacts
from shop_kernel.domain import Money
from shop_kernel.sql import update_versioned
from shop_kernel.unit_of_work import ContextTransaction, UnitOfWork, reading, transactions
from shop_kernel.wire import Amount

metadata = MetaData(schema="catalog")

products = Table(
    "products",
    metadata,
    Column("sku", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("price_amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("is_active", Boolean, nullable=False),
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


def _product(row: Row[Any]) -> Product:
    return Product(
        sku=Sku(row.sku),
        name=row.name,
        description=row.description,
        price=Money(row.price_amount, row.currency),
        is_active=row.is_active,
        on_hand=row.on_hand,
        reserved=row.reserved,
        version=row.version,
    )


def _product_values(product: Product) -> dict[str, Any]:
    return {
        "name": product.name,
        "description": product.description,
        "price_amount": product.price.amount,
        "currency": product.price.currency,
        "is_active": product.is_active,
        "on_hand": product.on_hand,
        "reserved": product.reserved,
    }


class SqlProducts:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def get(self, sku: str) -> Product | None:
        row = (await self._uow.connection.execute(
            select(products).where(products.c.sku == sku)
        )).first()  # fmt: skip
        return self._tracked(_product(row)) if row is not None else None

    async def lock(self, skus: Iterable[str]) -> dict[str, Product]:
        """Load and lock the products in sku order: concurrent reservations never deadlock."""
        rows = await self._uow.connection.execute(
            select(products)
            .where(products.c.sku.in_(sorted({sku for sku in skus if is_sku(sku)})))
            .order_by(products.c.sku)
            .with_for_update()
        )
        return {row.sku: self._tracked(_product(row)) for row in rows}

    async def add(self, product: Product) -> None:
        values = {**_product_values(product), "sku": product.sku.value, "version": 1}
        try:
            await self._uow.connection.execute(insert(products).values(values))
        except IntegrityError as error:
            if "products_pkey" in str(error.orig):
                raise SkuTaken(product.sku.value) from None
            raise
        product.saved_as(1)
        self._tracked(product)

    async def save(self, product: Product) -> None:
        await update_versioned(
            self._uow.connection, products, products.c.sku == product.sku.value, product,
            _product_values(product), name=product.sku.value,
        )  # fmt: skip

    async def record_movement(
        self,
        product: Product,
        *,
        actor: str,
        on_hand_delta: int = 0,
        reserved_delta: int = 0,
        reason: str,
        order_id: uuid.UUID | None = None,
    ) -> None:
        await self._uow.connection.execute(
            insert(stock_movements).values(
                sku=product.sku.value, actor=actor, on_hand_delta=on_hand_delta,
                reserved_delta=reserved_delta, reason=reason, on_hand=product.on_hand,
                reserved=product.reserved, order_id=order_id,
            )
        )  # fmt: skip

    def _tracked(self, product: Product) -> Product:
        self._uow.track(product)
        return product


class SqlReservations:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def lock(self, order_id: uuid.UUID) -> StockReservation | None:
        row = (await self._uow.connection.execute(
            select(reservations).where(reservations.c.order_id == order_id).with_for_update()
        )).first()  # fmt: skip
        if row is None:
            return None
        reservation = StockReservation(
            order_id=row.order_id,
            lines=dict(row.lines),
            status=row.status,
            shortfalls=[Shortfall(**item) for item in row.shortfalls],
            version=row.version,
        )
        self._uow.track(reservation)
        return reservation

    async def add(self, reservation: StockReservation) -> bool:
        """Store a new reservation; False if the order has one already (a concurrent delivery)."""
        inserted = await self._uow.connection.execute(
            pg_insert(reservations)
            .values(
                order_id=reservation.order_id,
                status=reservation.status,
                lines=reservation.lines,
                shortfalls=[vars(shortfall) for shortfall in reservation.shortfalls],
                version=1,
            )
            .on_conflict_do_nothing()
            .returning(reservations.c.order_id)
        )
        if inserted.first() is None:
            return False
        reservation.saved_as(1)
        self._uow.track(reservation)
        return True

    async def save(self, reservation: StockReservation) -> None:
        await update_versioned(
            self._uow.connection, reservations,
            reservations.c.order_id == reservation.order_id, reservation,
            {"status": reservation.status}, name=str(reservation.order_id),
        )  # fmt: skip


class SqlCatalogTransaction(ContextTransaction):
    def __init__(self, uow: UnitOfWork) -> None:
        super().__init__(uow)
        self._products = SqlProducts(uow)
        self._reservations = SqlReservations(uow)

    @property
    def products(self) -> Products:
        return self._products

    @property
    def reservations(self) -> Reservations:
        return self._reservations


def sql_transactions(unit_of_work: Callable[[], UnitOfWork]) -> CatalogUnitOfWork:
    """The catalog's unit of work on the kernel's: each call opens one transaction."""
    return transactions(unit_of_work, SqlCatalogTransaction)


class SqlCatalogQueries:
    """The catalog's facts for orders, straight from the write store (never stale)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def products(self, skus: Iterable[str]) -> dict[str, ProductFacts]:
        wanted = sorted({sku for sku in skus if is_sku(sku)})  # others cannot exist
        if not wanted:
            return {}
        async with reading(self._engine) as conn:  # a command's own, when it runs in one
            rows = await conn.execute(select(products).where(products.c.sku.in_(wanted)))
            return {
                row.sku: ProductFacts(
                    sku=row.sku,
                    name=row.name,
                    price=Amount(row.price_amount, row.currency),
                    is_active=row.is_active,
                )
                for row in rows
            }
