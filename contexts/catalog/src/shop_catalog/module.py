"""Wiring of the catalog context: what it gives the composition root."""

from __future__ import annotations

from pathlib import Path

import punq

from shop_catalog.adapters.sql import metadata, sql_transactions
from shop_catalog.adapters.subscriptions import ReleaseStock, ReserveStock
from shop_catalog.adapters.translations import TRANSLATIONS
from shop_catalog.application.stock import StockKeeping
from shop_catalog.contract import (
    ProductChanged,
    ProductCreated,
    StockAdjusted,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from shop_kernel.messaging.subscriptions import subscribe
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import UnitOfWork
from shop_orders.contract import OrderCancelled, OrderPlaced


def register(container: punq.Container, _settings: Settings) -> None:
    transactions = sql_transactions(lambda: container.resolve(UnitOfWork))  # pyright: ignore[reportUnknownLambdaType, reportUnknownMemberType, reportUnknownArgumentType]
    container.register(StockKeeping, instance=StockKeeping(transactions))


module = ContextModule(
    name="catalog",
    migrations=MigrationTarget(
        name="catalog", metadata=metadata, script_location=Path(__file__).parent / "migrations"
    ),
    register=register,
    events=[
        ProductCreated,
        ProductChanged,
        StockAdjusted,
        StockReserved,
        StockReservationFailed,
        StockReleased,
    ],
    translations=TRANSLATIONS,
    subscriptions=[subscribe(OrderPlaced, ReserveStock), subscribe(OrderCancelled, ReleaseStock)],
)
