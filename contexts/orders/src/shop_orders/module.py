"""Wiring of the orders context: what it gives the composition root."""

from __future__ import annotations

from pathlib import Path

from shop_catalog_contract import CatalogQueries, StockReservationFailed, StockReserved
from shop_kernel.di import Wiring
from shop_kernel.messaging.subscriptions import project, subscribe
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.mongo import ReadStore
from shop_kernel.schedules import Schedule
from shop_kernel.views import ReadView
from shop_orders.adapters.deadlines import TimeOutPendingOrders, check_every
from shop_orders.adapters.http import OrdersController
from shop_orders.adapters.sql import SqlOrders, metadata
from shop_orders.adapters.subscriptions import ConfirmOrder, RejectOrder
from shop_orders.adapters.translations import TRANSLATIONS
from shop_orders.adapters.view import (
    COLLECTION,
    OrderHistory,
    OrderViewEntry,
    OrderViewProjector,
    OrderViewSource,
)
from shop_orders.application.ordering import Ordering
from shop_orders.settings import OrdersSettings
from shop_orders_contract import LEGACY_ORDER_EVENTS, ORDER_EVENTS


def register(wiring: Wiring) -> None:
    catalog = wiring.get(CatalogQueries)
    wiring.provide(Ordering, Ordering(SqlOrders(), catalog, wiring.settings.currency))
    wiring.provide(OrderHistory, OrderHistory(wiring.get(ReadStore)))


module = ContextModule(
    name="orders",
    settings=OrdersSettings,
    migrations=MigrationTarget(
        name="orders", metadata=metadata, script_location=Path(__file__).parent / "migrations"
    ),
    register=register,
    needs=[CatalogQueries],
    route_handlers=[OrdersController],
    document_models=[OrderViewEntry],
    events=[*ORDER_EVENTS, *LEGACY_ORDER_EVENTS],
    translations=TRANSLATIONS,
    subscriptions=[
        # Each outcome changes its own order only: a batch of them takes one transaction.
        subscribe(StockReserved, ConfirmOrder, transaction="batch"),
        subscribe(StockReservationFailed, RejectOrder, transaction="batch"),
        *(project(event, OrderViewProjector) for event in ORDER_EVENTS),
    ],
    views=[ReadView("order_views", COLLECTION, OrderViewSource)],
    schedules=[Schedule("orders.pending-timeout", check_every, TimeOutPendingOrders)],
)
