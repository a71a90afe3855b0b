"""One shape per state: the order's snapshot is what its events carry, its view stores, the API
answers and a rebuild reads, from one translation; the shapes of the release before are read
as the current ones; the statuses are the same on both sides of the boundary."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import get_args

import msgspec
import pytest

import shop_orders_contract as contract
from shop_kernel.domain import Money
from shop_kernel.messaging.events import EventRegistry, encode_event
from shop_kernel.sql import state_values
from shop_kernel.wire import Amount
from shop_orders.adapters.sql import APART, orders
from shop_orders.adapters.translations import TRANSLATIONS, order_snapshot
from shop_orders.adapters.view import document, versioned
from shop_orders.domain.model import Order, OrderStatus
from shop_orders.module import module


def placed_order() -> Order:
    order = Order.start(uuid.uuid4(), "EUR")
    order.add_item("MUG-1", "Mug", Money(1250, "EUR"), 2)
    order.add_item("CUP-1", "Cup", Money(399, "EUR"), 1)
    order.saved_as(1)
    order.pull_events()  # committed with its first version
    order.confirm()
    order.saved_as(2)
    return order


def test_the_statuses_are_the_same_in_the_domain_the_contract_and_the_table() -> None:
    assert get_args(OrderStatus) == get_args(contract.OrderStatus)
    [check] = [c for c in orders.constraints if c.name == "orders_status_known"]
    assert all(f"'{status}'" in str(check.sqltext) for status in get_args(OrderStatus))


def test_every_event_carries_the_snapshot_the_view_stores_and_the_api_answers() -> None:
    order = placed_order()
    snapshot = order_snapshot(order)
    assert snapshot.lines[0] == contract.OrderLine(
        sku="MUG-1", name="Mug", unit_price=Amount(1250, "EUR"), quantity=2,
        line_total=Amount(2500, "EUR"),
    )  # fmt: skip
    assert snapshot.total == Amount(2899, "EUR")
    [placed] = [TRANSLATIONS[type(e)](order, e) for e in order.pull_events()]
    assert isinstance(placed, contract.OrderPlaced)
    assert (placed.order, placed.aggregate_id, placed.aggregate_version) == (
        snapshot,
        str(order.id),
        2,
    )
    stored = {"_id": str(order.id), **document(snapshot), "version": order.version}
    assert versioned(stored) == contract.VersionedOrder(
        **msgspec.structs.asdict(snapshot), version=2
    )


def test_a_column_is_each_field_of_the_snapshot_but_those_kept_apart() -> None:
    fields = {f.name for f in msgspec.structs.fields(contract.OrderSnapshot)}
    assert fields - set(APART) <= set(orders.c.keys())
    values = state_values(order_snapshot(placed_order()), orders, apart=APART)
    assert set(values) == fields - set(APART)


def legacy(
    kind: type[contract.LegacyEvent], order_id: uuid.UUID, **extra: object
) -> contract.LegacyEvent:
    """An event as the release before wrote it: the order's fields spread over the event."""
    now = datetime.now(UTC)
    line = contract.OrderLine(
        sku="MUG-1", name="Mug", unit_price=Amount(1250, "EUR"), quantity=2,
        line_total=Amount(2500, "EUR"),
    )  # fmt: skip
    return kind(
        aggregate_id=str(order_id), aggregate_version=3, order_id=order_id,
        customer_id=uuid.uuid4(), status="pending", lines=[line], total=Amount(2500, "EUR"),
        rejection_reason=None, created_at=now, updated_at=now, **extra,
    )  # fmt: skip


@pytest.mark.parametrize("kind", contract.LEGACY_ORDER_EVENTS, ids=lambda k: k.__name__)
def test_the_shapes_of_the_release_before_are_read_as_the_current_ones(
    kind: type[contract.LegacyEvent],
) -> None:
    order_id = uuid.uuid4()
    extra: dict[str, object] = {
        contract.OrderRejectedV1: {"short_skus": ["MUG-1"]},
        contract.OrderCancelledV2: {"previous_status": "pending"},
    }.get(kind, {})
    old = legacy(kind, order_id, **extra)
    read = EventRegistry(module.events).decode(encode_event(old))
    assert type(read) is kind.current
    assert isinstance(read, contract.OrderEvent)
    assert (read.event_id, read.aggregate_version) == (old.event_id, 3)
    assert read.order.id == order_id
    assert read.order.lines[0].line_total == Amount(2500, "EUR")
    for name, value in extra.items():
        assert getattr(read, name) == value
