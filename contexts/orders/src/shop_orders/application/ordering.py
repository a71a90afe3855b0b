"""The customer's side of an order (cart to confirmation, cancel) and the stock saga's outcomes.

Each use case is given its unit of work and runs in it: the order is loaded locked, so
changes to one order serialise (a save that still meets a concurrent change is refused
whole: 409); with an expected version (``If-Match``) a version that moved on is a 412.
Prices and names are read from catalog's write side, in the same transaction, at the moment
an item is added (never from the client).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shop_catalog_contract import CatalogQueries, ProductFacts
from shop_kernel.domain import InvalidField, Money, PreconditionFailed
from shop_kernel.log import get_logger
from shop_kernel.unit_of_work import UnitOfWork
from shop_orders.application.ports import Orders
from shop_orders.domain.model import Order, OrderNotFound

log = get_logger(__name__)


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    is_admin: bool = False


@dataclass(frozen=True)
class Item:
    sku: str
    quantity: int


@dataclass(frozen=True)
class TargetOrder:
    """The order a change is for: the caller it must be visible to, and the version it must
    still have (``If-Match``), if any."""

    caller: Caller
    order_id: uuid.UUID
    expected_version: int | None = None


class Ordering:
    def __init__(self, orders: Orders, catalog: CatalogQueries, currency: str) -> None:
        self._orders = orders
        self._catalog = catalog
        self._currency = currency

    async def create(self, uow: UnitOfWork, caller: Caller, items: Sequence[Item] = ()) -> Order:
        """A new draft of the caller's, with ``items`` added in order (a repeated sku adds up)."""
        async with uow:
            facts = await self._catalog.products(uow, [item.sku for item in items])
            order = Order.start(caller.user_id, self._currency)
            for index, item in enumerate(items):
                try:
                    _add(order, item, _offered(item.sku, facts))
                except InvalidField as refused:
                    raise refused.within(f"items[{index}]") from None
            await self._orders.add(uow, order)
            await uow.commit()
        return order

    async def add_item(self, uow: UnitOfWork, target: TargetOrder, item: Item) -> Order:
        async with uow:
            # Refused (unknown, inactive) before the order is even read.
            fact = _offered(item.sku, await self._catalog.products(uow, [item.sku]))
            order = await self._customers(uow, target)
            _add(order, item, fact)
            await self._save(uow, order)
        return order

    async def set_quantity(self, uow: UnitOfWork, target: TargetOrder, item: Item) -> Order:
        async with uow:
            order = await self._customers(uow, target)
            order.set_quantity(item.sku, item.quantity)
            await self._save(uow, order)
        return order

    async def remove_item(self, uow: UnitOfWork, target: TargetOrder, sku: str) -> Order:
        async with uow:
            order = await self._customers(uow, target)
            order.remove_item(sku)
            await self._save(uow, order)
        return order

    async def confirm(self, uow: UnitOfWork, target: TargetOrder) -> Order:
        """Draft -> pending: catalog is asked to reserve stock for every line."""
        async with uow:
            order = await self._customers(uow, target)
            order.confirm()
            await self._save(uow, order)
        return order

    async def cancel(self, uow: UnitOfWork, target: TargetOrder) -> Order:
        """By its customer or an admin; catalog gives back whatever stock the order holds."""
        async with uow:
            order = await self._customers(uow, target, admin_may=True)
            order.cancel()
            await self._save(uow, order)
        return order

    async def stock_reserved(self, uow: UnitOfWork, order_id: uuid.UUID) -> Order | None:
        """The saga's good outcome: a pending order is confirmed (later news changes nothing)."""
        async with uow:
            order = await self._orders.lock(uow, order_id)
            if order is None:
                log.warning("stock outcome for an unknown order", order_id=str(order_id))
                return None
            order.stock_reserved()
            await self._save(uow, order)
        return order

    async def stock_short(
        self, uow: UnitOfWork, order_id: uuid.UUID, short_skus: Sequence[str]
    ) -> Order | None:
        """The saga's bad outcome: a pending order is rejected, naming the short skus."""
        async with uow:
            order = await self._orders.lock(uow, order_id)
            if order is None:
                log.warning("stock outcome for an unknown order", order_id=str(order_id))
                return None
            order.stock_short(short_skus)
            await self._save(uow, order)
        return order

    async def time_out_pending(
        self,
        uow: UnitOfWork,
        limit: timedelta,
        *,
        now: datetime | None = None,
        batch: int = 100,
    ) -> list[uuid.UUID]:
        """Reject every order pending for ``limit`` or longer; return the ones rejected now.

        Each batch is one transaction. A reservation that arrives afterwards is released by
        catalog (the rejection tells it), exactly as when a cancel overtakes a reservation.
        """
        moment = now or datetime.now(UTC)
        rejected: list[uuid.UUID] = []
        while True:
            async with uow:
                waiting = await self._orders.pending_since(uow, moment - limit, batch)
                for order_id in waiting:
                    order = await self._orders.lock(uow, order_id)
                    if order is None:
                        continue
                    order.time_out(moment, limit)
                    if order.pending_events:  # still pending, and that long: rejected
                        await self._orders.save(uow, order)
                        rejected.append(order_id)
                        log.warning("pending order timed out; rejected", order_id=str(order_id))
                await uow.commit()
            if len(waiting) < batch:
                return rejected

    async def _customers(
        self, uow: UnitOfWork, target: TargetOrder, *, admin_may: bool = False
    ) -> Order:
        """The caller's order, locked (an admin's too where ``admin_may``); anyone else's is
        not found, as an unknown one is."""
        caller = target.caller
        order = await self._orders.lock(uow, target.order_id)
        if order is None or not order.visible_to(
            caller.user_id, is_admin=admin_may and caller.is_admin
        ):
            raise OrderNotFound(target.order_id)
        if target.expected_version is not None and order.version != target.expected_version:
            raise PreconditionFailed(
                "the order changed since you read it", order_id=str(order.id), version=order.version
            )
        return order

    async def _save(self, uow: UnitOfWork, order: Order) -> None:
        """Save and commit what the order decided; a change that changed nothing is not one."""
        if order.pending_events:
            await self._orders.save(uow, order)
            await uow.commit()


def _offered(sku: str, facts: dict[str, ProductFacts]) -> ProductFacts:
    fact = facts.get(sku)
    if fact is None or not fact.is_active:
        raise InvalidField("sku", f"no product {sku} is on sale")
    return fact


def _add(order: Order, item: Item, fact: ProductFacts) -> None:
    price = Money(fact.price.amount, fact.price.currency)
    order.add_item(item.sku, fact.name, price, item.quantity)
