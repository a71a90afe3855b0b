"""The order's rules as a state machine: totals always add up, illegal moves always refused."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from shop_kernel.domain import DomainError, Money
from shop_kernel.domain.money import MAX_MINOR_UNITS
from shop_orders.domain.model import (
    MAX_QUANTITY,
    TIMED_OUT,
    CannotCancel,
    EmptyOrder,
    Order,
    OrderNotDraft,
    Rejected,
)

SKUS = st.sampled_from(["A-1", "B-2", "C-3"])
PRICES = st.integers(min_value=0, max_value=10_000) | st.just(MAX_MINOR_UNITS // 2)


class OrderLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.order = Order.start(uuid.uuid4(), "EUR")
        self.expected: dict[str, tuple[int, int]] = {}  # sku -> (unit price, quantity)

    @rule(sku=SKUS, price=PRICES, quantity=st.integers(min_value=-1, max_value=MAX_QUANTITY + 1))
    def add(self, sku: str, price: int, quantity: int) -> None:
        before = self.expected.get(sku)
        unit = before[0] if before else price
        wanted = (before[1] if before else 0) + quantity
        legal = (
            self.order.status == "draft"
            and 1 <= quantity <= MAX_QUANTITY
            and wanted <= MAX_QUANTITY
            and self._fits({**self.expected, sku: (unit, wanted)})
        )
        try:
            self.order.add_item(sku, sku.lower(), Money(price, "EUR"), quantity)
        except DomainError:
            assert not legal
        else:
            assert legal
            self.expected[sku] = (unit, wanted)

    @rule(sku=SKUS)
    def remove(self, sku: str) -> None:
        try:
            self.order.remove_item(sku)
        except DomainError:
            assert self.order.status != "draft" or sku not in self.expected
        else:
            del self.expected[sku]

    @rule()
    def confirm(self) -> None:
        was = self.order.status
        try:
            self.order.confirm()
        except (OrderNotDraft, EmptyOrder):
            assert was != "draft" or not self.expected
        else:
            assert was == "draft"
            assert self.order.status == "pending"

    @rule()
    def cancel(self) -> None:
        was = self.order.status
        try:
            self.order.cancel()
        except CannotCancel:
            assert was in ("rejected", "cancelled")
        else:
            assert self.order.status == "cancelled"

    @rule(reserved=st.booleans())
    def saga_outcome(self, reserved: bool) -> None:
        was = self.order.status
        if reserved:
            self.order.stock_reserved()
        else:
            self.order.stock_short(["B-2", "A-1"])
        if was == "pending":
            assert self.order.status == ("confirmed" if reserved else "rejected")
        else:
            assert self.order.status == was  # late news changes nothing

    @invariant()
    def total_is_the_sum_of_the_lines(self) -> None:
        assert self.order.total == Money(sum(p * q for p, q in self.expected.values()), "EUR")
        lines = self.order.lines
        assert {ln.sku: (ln.unit_price.amount, ln.quantity) for ln in lines} == self.expected

    @staticmethod
    def _fits(lines: dict[str, tuple[int, int]]) -> bool:
        return sum(p * q for p, q in lines.values()) <= MAX_MINOR_UNITS


TestOrderLife = OrderLife.TestCase


def test_a_rejection_names_the_short_skus() -> None:
    order = Order.start(uuid.uuid4(), "EUR")
    order.add_item("A-1", "a", Money(100, "EUR"), 1)
    order.confirm()
    order.stock_short(["B-2", "A-1"])
    assert order.rejection_reason == "not enough stock: A-1, B-2"


def test_a_line_in_another_currency_is_refused() -> None:
    order = Order.start(uuid.uuid4(), "EUR")
    with pytest.raises(DomainError):
        order.add_item("A-1", "a", Money(100, "USD"), 1)


def _placed() -> Order:
    order = Order.start(uuid.uuid4(), "EUR")
    order.add_item("A-1", "Lamp", Money(1500, "EUR"), 2)
    order.confirm()
    order.pull_events()
    return order


def test_an_order_pending_past_its_limit_is_rejected_for_timeout() -> None:
    order = _placed()
    limit = timedelta(minutes=15)
    order.time_out(order.updated_at + limit, limit)
    assert order.status == "rejected"
    assert order.rejection_reason == TIMED_OUT
    [event] = order.pull_events()
    assert isinstance(event, Rejected)
    assert event.short_skus == ()


def test_an_order_within_its_limit_or_no_longer_pending_does_not_time_out() -> None:
    limit = timedelta(minutes=15)
    waiting = _placed()
    waiting.time_out(waiting.updated_at + limit - timedelta(seconds=1), limit)
    assert waiting.status == "pending"
    confirmed = _placed()
    confirmed.stock_reserved()
    confirmed.time_out(confirmed.updated_at + 2 * limit, limit)
    assert confirmed.status == "confirmed"
    draft = Order.start(uuid.uuid4(), "EUR")
    draft.time_out(draft.updated_at + 2 * limit, limit)
    assert draft.status == "draft"


def test_a_reservation_arriving_after_the_timeout_changes_nothing() -> None:
    order = _placed()
    limit = timedelta(seconds=1)
    order.time_out(order.updated_at + limit, limit)
    order.pull_events()
    order.stock_reserved()
    assert order.status == "rejected"
    assert order.pull_events() == []
