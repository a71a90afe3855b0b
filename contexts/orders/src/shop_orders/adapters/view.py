"""The ``order_views`` read view: what ``GET /orders`` and ``GET /orders/{id}`` return.

Documents are the order's snapshot as it is (``shop_orders_contract.OrderSnapshot``, the
shape API.md answers), written by the projector from the order events (each carries it;
the newest ``aggregate_version`` wins) and by a rebuild from the write store. Lists run
newest first on ``sort_key`` (creation time to the microsecond, then id), which is also the
cursor: pages never skip or repeat an order.

The view holds no personal data: a customer is only an id, and an erased account's id no
longer leads to a name or an email anywhere, so the orders stay as they were.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import msgspec
from beanie import Document
from pymongo import DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.messaging.projection import ViewWrite, apply_newest
from shop_kernel.mongo import ReadStore
from shop_kernel.pages import keyset_page
from shop_orders.adapters.sql import order_from_row, orders
from shop_orders.adapters.translations import order_snapshot
from shop_orders_contract import OrderEvent, OrderSnapshot, VersionedOrder

COLLECTION = "order_views"
_SORT_KEY = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\|"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


class OrderViewEntry(Document):
    """The view's document (declared for its indexes; read and written through ReadStore)."""

    id: str  # pyright: ignore[reportIncompatibleVariableOverride, reportGeneralTypeIssues] - the order id
    customer_id: str
    status: str
    lines: list[dict[str, Any]]
    total: dict[str, Any]
    rejection_reason: str | None
    created_at: str
    updated_at: str
    sort_key: str
    version: int

    class Settings:
        name = COLLECTION
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("customer_id", DESCENDING), ("sort_key", DESCENDING)]),
            IndexModel(
                [("customer_id", DESCENDING), ("status", DESCENDING), ("sort_key", DESCENDING)]
            ),
            IndexModel([("sort_key", DESCENDING)]),
            IndexModel([("status", DESCENDING), ("sort_key", DESCENDING)]),
        ]


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_sort_key(key: str) -> bool:
    return _SORT_KEY.fullmatch(key) is not None


def document(order: OrderSnapshot) -> dict[str, Any]:
    """The view's document of an order: its snapshot as it is (its id as ``_id``), and the
    key lists are sorted on."""
    fields = msgspec.to_builtins(order)
    del fields["id"]
    return {**fields, "sort_key": f"{timestamp(order.created_at)}|{order.id}"}


def versioned(entry: dict[str, Any]) -> VersionedOrder:
    """An order as the view holds it, at its version."""
    return msgspec.convert({**entry, "id": entry["_id"]}, VersionedOrder)


class OrderViewProjector:
    def __init__(self, store: ReadStore) -> None:
        self._view: AsyncCollection[dict[str, Any]] = store.collection(COLLECTION)

    async def __call__(self, events: Sequence[OrderEvent]) -> None:
        await apply_newest(
            self._view,
            (
                ViewWrite(str(event.order.id), event.aggregate_version, document(event.order))
                for event in events
            ),
        )


class OrderViewSource:
    """The orders as the write store knows them, as the view's documents."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(orders))).scalar_one())

    async def documents(self, keys: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        query = select(orders)
        if keys is not None:
            query = query.where(orders.c.id.in_([uuid.UUID(key) for key in keys]))
        async with self._engine.connect() as conn:
            async for row in await conn.stream(query):
                order = order_snapshot(order_from_row(row))
                yield {"_id": str(order.id), **document(order), "version": row.version}


class OrderHistory:
    """Queries of the view: one order, or pages newest first."""

    def __init__(self, store: ReadStore) -> None:
        self._view: AsyncCollection[dict[str, Any]] = store.collection(COLLECTION)

    async def get(self, order_id: uuid.UUID) -> dict[str, Any] | None:
        return await self._view.find_one({"_id": str(order_id)})

    async def page(
        self,
        *,
        customer_id: uuid.UUID | None,
        status: str | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        query: dict[str, Any] = {}
        if customer_id is not None:
            query["customer_id"] = str(customer_id)
        if status is not None:
            query["status"] = status
        if after is not None:
            query["sort_key"] = {"$lt": after}
        found = self._view.find(query).sort("sort_key", DESCENDING).limit(limit + 1)
        return keyset_page([doc async for doc in found], limit, key=lambda doc: doc["sort_key"])
