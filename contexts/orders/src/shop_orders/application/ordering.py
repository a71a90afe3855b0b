"""The customer's side of an order (cart to confirmation, cancel) and the stock saga's outcomes.

Prices and names are read from catalog's write side at the moment an item is added (never
from the client), before the order is locked. Every change loads the order locked, so
changes to one order serialise; if a save still meets a concurrent change, the change is
retried on a fresh copy a few times, and otherwise refused whole (409). With an expected
version (``If-Match``) there is no retry: a version that moved on is a 412.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shop_catalog_contract import CatalogQueries, ProductFacts
from shop_kernel.domain import ConcurrentChange, InvalidField, Money, PreconditionFailed
from shop_kernel.log import get_logger
from shop_orders.application.ports import OrdersUnitOfWork
from shop_orders.domain.model import TIMED_OUT, Order, OrderNotFound

log = get_logger(__name__)

ATTEMPTS = 5


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    is_admin: bool = False


@dataclass(frozen=True)
class Item:
    sku: str
    quantity: int


class Ordering:
    def __init__(
        self, transaction: OrdersUnitOfWork, catalog: CatalogQueries, currency: str
    ) -> None:
        self._transaction = transaction
        self._catalog = catalog
        self._currency = currency

    async def create(self, caller: Caller, items: Sequence[Item] = ()) -> Order:
        """A new draft of the caller's, with ``items`` added in order (a repeated sku adds up)."""
        facts = await self._catalog.products(item.sku for item in items)
        order = Order.start(caller.user_id, self._currency)
        for index, item in enumerate(items):
            try:
                _add(order, item, _offered(item.sku, facts))
            except InvalidField as refused:
                raise refused.within(f"items[{index}]") from None
        async with self._transaction() as tx:
            await tx.orders.add(order)
            await tx.commit()
        return order

    async def add_item(
        self, caller: Caller, order_id: uuid.UUID, item: Item, *, expected_version: int | None
    ) -> Order:
        # Refused (unknown, inactive) before the order is even read.
        fact = _offered(item.sku, await self._catalog.products([item.sku]))
        return await self._change(
            order_id, lambda order: _add(order, item, fact),
            caller=caller, expected_version=expected_version,
        )  # fmt: skip

    async def set_quantity(
        self, caller: Caller, order_id: uuid.UUID, item: Item, *, expected_version: int | None
    ) -> Order:
        return await self._change(
            order_id, lambda order: order.set_quantity(item.sku, item.quantity),
            caller=caller, expected_version=expected_version,
        )  # fmt: skip

    async def remove_item(
        self, caller: Caller, order_id: uuid.UUID, sku: str, *, expected_version: int | None
    ) -> Order:
        return await self._change(
            order_id, lambda order: order.remove_item(sku),
            caller=caller, expected_version=expected_version,
        )  # fmt: skip

    async def confirm(
        self, caller: Caller, order_id: uuid.UUID, *, expected_version: int | None
    ) -> Order:
        """Draft -> pending: catalog is asked to reserve stock for every line."""
        return await self._change(
            order_id, Order.confirm, caller=caller, expected_version=expected_version
        )

    async def cancel(
        self, caller: Caller, order_id: uuid.UUID, *, expected_version: int | None
    ) -> Order:
        """By its customer or an admin; catalog gives back whatever stock the order holds."""
        return await self._change(
            order_id, Order.cancel, caller=caller, expected_version=expected_version,
            admin_may=True,
        )  # fmt: skip

    async def stock_reserved(self, order_id: uuid.UUID) -> Order | None:
        """The saga's good outcome: a pending order is confirmed (later news changes nothing)."""
        return await self._saga(order_id, Order.stock_reserved)

    async def stock_short(self, order_id: uuid.UUID, short_skus: Sequence[str]) -> Order | None:
        return await self._saga(order_id, lambda order: order.stock_short(short_skus))

    async def time_out_pending(
        self, limit: timedelta, *, now: datetime | None = None, batch: int = 100
    ) -> list[uuid.UUID]:
        """Reject every order pending for ``limit`` or longer; return the ones rejected now.

        A reservation that arrives afterwards is released by catalog (the rejection tells it),
        exactly as when a cancel overtakes a reservation.
        """
        moment = now or datetime.now(UTC)
        rejected: list[uuid.UUID] = []
        while True:
            async with self._transaction() as tx:
                waiting = await tx.orders.pending_since(moment - limit, batch)
            for order_id in waiting:
                order = await self._saga(order_id, lambda o: o.time_out(moment, limit))
                if order is not None and order.rejection_reason == TIMED_OUT:
                    rejected.append(order_id)
                    log.warning("pending order timed out; rejected", order_id=str(order_id))
            if len(waiting) < batch:
                return rejected

    async def _saga(self, order_id: uuid.UUID, outcome: Callable[[Order], None]) -> Order | None:
        try:
            return await self._change(order_id, outcome)
        except OrderNotFound:
            log.warning("stock outcome for an unknown order", order_id=str(order_id))
            return None

    async def _change(
        self,
        order_id: uuid.UUID,
        change: Callable[[Order], None],
        *,
        caller: Caller | None = None,
        expected_version: int | None = None,
        admin_may: bool = False,
    ) -> Order:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._transaction() as tx:
                    order = await tx.orders.lock(order_id)
                    if order is None or (
                        caller is not None
                        and not order.visible_to(
                            caller.user_id, is_admin=admin_may and caller.is_admin
                        )
                    ):
                        raise OrderNotFound(order_id)
                    if expected_version is not None and order.version != expected_version:
                        raise _stale(order)
                    change(order)
                    if order.pending_events:
                        await tx.orders.save(order)
                        await tx.commit()
                    return order
            except ConcurrentChange:
                if expected_version is not None or attempt == ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 - jitter
        raise AssertionError("unreachable")  # pragma: no cover


def _stale(order: Order) -> PreconditionFailed:
    return PreconditionFailed(
        "the order changed since you read it", order_id=str(order.id), version=order.version
    )


def _offered(sku: str, facts: dict[str, ProductFacts]) -> ProductFacts:
    fact = facts.get(sku)
    if fact is None or not fact.is_active:
        raise InvalidField("sku", f"no product {sku} is on sale")
    return fact


def _add(order: Order, item: Item, fact: ProductFacts) -> None:
    price = Money(fact.price.amount, fact.price.currency)
    order.add_item(item.sku, fact.name, price, item.quantity)
