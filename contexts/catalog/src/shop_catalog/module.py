"""Wiring of the catalog context: what it gives the composition root."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from shop_catalog.adapters.http import ProductsController
from shop_catalog.adapters.sql import SqlCatalogQueries, SqlProducts, SqlReservations, metadata
from shop_catalog.adapters.subscriptions import ReleaseStock, ReserveStock
from shop_catalog.adapters.translations import TRANSLATIONS
from shop_catalog.adapters.view import (
    COLLECTION,
    ProductCatalog,
    ProductCatalogEntry,
    ProductCatalogProjector,
    ProductCatalogSource,
)
from shop_catalog.application.products import ProductAdmin
from shop_catalog.application.stock import StockKeeping
from shop_catalog_contract import (
    LEGACY_PRODUCT_EVENTS,
    PRODUCT_EVENTS,
    CatalogQueries,
    StockReleased,
    StockReservationFailed,
    StockReserved,
)
from shop_kernel.di import Wiring
from shop_kernel.messaging.subscriptions import project, subscribe
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.mongo import ReadStore
from shop_kernel.views import ReadView
from shop_orders_contract import OrderCancelled, OrderPlaced, OrderRejected


def register(wiring: Wiring) -> None:
    products = SqlProducts()
    wiring.provide(StockKeeping, StockKeeping(products, SqlReservations()))
    wiring.provide(ProductAdmin, ProductAdmin(products, wiring.settings.currency))
    wiring.provide(ProductCatalog, ProductCatalog(wiring.get(ReadStore), wiring.get(Redis)))
    wiring.provide(CatalogQueries, SqlCatalogQueries())


module = ContextModule(
    name="catalog",
    migrations=MigrationTarget(
        name="catalog", metadata=metadata, script_location=Path(__file__).parent / "migrations"
    ),
    register=register,
    provides=[CatalogQueries],
    route_handlers=[ProductsController],
    document_models=[ProductCatalogEntry],
    events=[
        *PRODUCT_EVENTS,
        *LEGACY_PRODUCT_EVENTS,
        StockReserved,
        StockReservationFailed,
        StockReleased,
    ],
    translations=TRANSLATIONS,
    subscriptions=[
        subscribe(OrderPlaced, ReserveStock),
        subscribe(OrderCancelled, ReleaseStock),
        subscribe(OrderRejected, ReleaseStock),  # a timed-out order's late reservation
        *(project(event, ProductCatalogProjector) for event in PRODUCT_EVENTS),
    ],
    views=[ReadView("product_catalog", COLLECTION, ProductCatalogSource)],
)
