"""The ordering use cases on fakes: catalog facts, ownership, concurrent changes, preconditions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Self

import pytest

from shop_catalog_contract import ProductFacts
from shop_kernel.domain import ConcurrentChange, InvalidField, Money, PreconditionFailed
from shop_kernel.wire import Amount
from shop_orders.application.ordering import Caller, Item, Ordering, TargetOrder
from shop_orders.domain.model import Order, OrderNotFound


class FakeCatalog:
    def __init__(self, *facts: ProductFacts) -> None:
        self.facts = {fact.sku: fact for fact in facts}

    async def products(self, uow: Any, skus: Iterable[str]) -> dict[str, ProductFacts]:
        return {sku: self.facts[sku] for sku in skus if sku in self.facts}


class FakeOrders:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Order] = {}
        self.conflicts = 0  # how many saves still meet a concurrent change

    async def lock(self, uow: Any, order_id: uuid.UUID) -> Order | None:
        stored = self.rows.get(order_id)
        if stored is None:
            return None
        return Order(
            id=stored.id, customer_id=stored.customer_id, currency=stored.currency,
            status=stored.status, lines=list(stored.lines), version=stored.version,
        )  # fmt: skip

    async def add(self, uow: Any, order: Order) -> None:
        order.saved_as(1)
        self.rows[order.id] = order

    async def save(self, uow: Any, order: Order) -> None:
        if self.conflicts:
            self.conflicts -= 1
            raise ConcurrentChange(str(order.id))
        order.saved_as(order.version + 1)
        self.rows[order.id] = order


class FakeUnitOfWork:
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    async def commit(self) -> None:
        return None


class UseCases:
    """``Ordering`` with each call given a unit of work of its own, as a request's is."""

    def __init__(self, ordering: Any) -> None:
        self._ordering = ordering

    def __getattr__(self, name: str) -> Any:
        use_case = getattr(self._ordering, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await use_case(FakeUnitOfWork(), *args, **kwargs)

        return call


MUG = ProductFacts(sku="MUG-1", name="Mug", price=Amount(1250, "EUR"), is_active=True)
OLD = ProductFacts(sku="OLD-1", name="Old", price=Amount(100, "EUR"), is_active=False)
ME, OTHER = Caller(uuid.uuid4()), Caller(uuid.uuid4())


@pytest.fixture
def store() -> FakeOrders:
    return FakeOrders()


@pytest.fixture
def ordering(store: FakeOrders) -> Any:
    return UseCases(Ordering(store, FakeCatalog(MUG, OLD), "EUR"))


async def test_items_are_priced_by_the_catalog_and_refusals_name_the_item(
    ordering: Any,
) -> None:
    order = await ordering.create(ME, [Item("MUG-1", 2), Item("MUG-1", 1)])
    assert order.line("MUG-1").quantity == 3
    assert order.total == Money(3750, "EUR")
    for items, field in (
        ([Item("MUG-1", 1), Item("OLD-1", 1)], "items[1].sku"),
        ([Item("NOPE-1", 1)], "items[0].sku"),
        ([Item("MUG-1", 0)], "items[0].quantity"),
    ):
        with pytest.raises(InvalidField) as refused:
            await ordering.create(ME, items)
        assert refused.value.field == field


async def test_a_change_meeting_a_concurrent_change_is_refused_whole(
    ordering: Any, store: FakeOrders
) -> None:
    order = await ordering.create(ME)
    await ordering.add_item(TargetOrder(ME, order.id, None), Item("MUG-1", 1))
    store.conflicts = 1
    with pytest.raises(ConcurrentChange):
        await ordering.add_item(TargetOrder(ME, order.id, None), Item("MUG-1", 1))
    assert store.rows[order.id].line("MUG-1").quantity == 1  # nothing of it applied


async def test_with_an_expected_version_there_is_no_retry_and_a_stale_one_fails(
    ordering: Any, store: FakeOrders
) -> None:
    order = await ordering.create(ME)
    with pytest.raises(PreconditionFailed):
        await ordering.add_item(TargetOrder(ME, order.id, 7), Item("MUG-1", 1))
    store.conflicts = 1
    with pytest.raises(ConcurrentChange):
        await ordering.add_item(TargetOrder(ME, order.id, 1), Item("MUG-1", 1))
    assert store.rows[order.id].version == 1
    assert store.rows[order.id].lines == []


async def test_only_the_customer_changes_an_order_and_an_admin_may_cancel_it(
    ordering: Any,
) -> None:
    order = await ordering.create(ME, [Item("MUG-1", 1)])
    admin = Caller(uuid.uuid4(), is_admin=True)
    for caller in (OTHER, admin):
        with pytest.raises(OrderNotFound):
            await ordering.add_item(TargetOrder(caller, order.id, None), Item("MUG-1", 1))
        with pytest.raises(OrderNotFound):
            await ordering.confirm(TargetOrder(caller, order.id, None))
    with pytest.raises(OrderNotFound):
        await ordering.cancel(TargetOrder(OTHER, order.id, None))
    assert (await ordering.cancel(TargetOrder(admin, order.id, None))).status == "cancelled"


async def test_saga_outcomes_for_unknown_orders_are_ignored_and_late_news_changes_nothing(
    ordering: Any, store: FakeOrders
) -> None:
    assert await ordering.stock_reserved(uuid.uuid4()) is None
    order = await ordering.create(ME, [Item("MUG-1", 1)])
    await ordering.confirm(TargetOrder(ME, order.id, None))
    await ordering.cancel(TargetOrder(ME, order.id, None))
    late = await ordering.stock_reserved(order.id)
    assert late is not None
    assert late.status == "cancelled"
    assert store.rows[order.id].status == "cancelled"
