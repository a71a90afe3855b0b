"""Products and reservations without any store: the stock invariants hold whatever happens."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shop_catalog.domain.model import (
    MAX_STOCK,
    InvalidField,
    Product,
    Shortfall,
    StockBelowReserved,
    StockReservation,
    parse_sku,
)
from shop_kernel.domain import Money


def product(sku: str = "ABC-1", stock: int = 10) -> Product:
    return Product.create(parse_sku(sku), "Widget", "", Money(500, "EUR"), stock)


@pytest.mark.parametrize("raw", ["AB", "abc", "ABC_1", "ABC-1\n", "A" * 33, "ÄBC"])
def test_a_malformed_sku_is_refused(raw: str) -> None:
    with pytest.raises(InvalidField):
        parse_sku(raw)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("adjust"), st.integers(min_value=-20, max_value=20)),
        st.tuples(st.just("reserve"), st.integers(min_value=1, max_value=8)),
        st.tuples(st.just("release"), st.integers(min_value=0, max_value=10)),
    ),
    max_size=40,
)


@given(st.integers(min_value=0, max_value=30), operations)
def test_any_sequence_of_movements_keeps_the_stock_consistent(
    start: int, steps: list[tuple[str, int]]
) -> None:
    item = product(stock=start)
    held: list[StockReservation] = []
    for kind, number in steps:
        if kind == "adjust":
            try:
                item.adjust_stock(number, "count")
            except StockBelowReserved:
                assert item.on_hand + number < item.reserved
        elif kind == "reserve":
            reservation = StockReservation.attempt(uuid.uuid4(), {"ABC-1": number}, {"ABC-1": item})
            if reservation.status == "reserved":
                held.append(reservation)
            else:
                assert reservation.shortfalls == [Shortfall("ABC-1", number, item.available)]
        elif held:
            reservation = held.pop(number % len(held))
            assert reservation.release({"ABC-1": item})
            assert not reservation.release({"ABC-1": item})  # only once
        assert 0 <= item.reserved <= item.on_hand
        assert item.available == item.on_hand - item.reserved
        assert item.reserved == sum(r.lines["ABC-1"] for r in held)


def test_a_reservation_holds_all_lines_or_none() -> None:
    a, b = product("AAA", 5), product("BBB", 1)
    failed = StockReservation.attempt(uuid.uuid4(), {"AAA": 2, "BBB": 3}, {"AAA": a, "BBB": b})
    assert failed.status == "failed"
    assert failed.shortfalls == [Shortfall("BBB", 3, 1)]
    assert (a.reserved, b.reserved) == (0, 0)
    done = StockReservation.attempt(uuid.uuid4(), {"AAA": 2, "BBB": 1}, {"AAA": a, "BBB": b})
    assert done.status == "reserved"
    assert (a.available, b.available) == (3, 0)


def test_an_unknown_or_inactive_product_is_a_shortfall() -> None:
    inactive = product("OFF")
    inactive.change(is_active=False)
    failed = StockReservation.attempt(uuid.uuid4(), {"OFF": 1, "GONE": 1}, {"OFF": inactive})
    assert failed.shortfalls == [Shortfall("GONE", 1, 0), Shortfall("OFF", 1, 0)]


def test_stock_never_grows_beyond_what_can_be_stored() -> None:
    item = product(stock=MAX_STOCK - 1)
    item.adjust_stock(1, "delivery")
    with pytest.raises(InvalidField):
        item.adjust_stock(1, "delivery")
    assert item.on_hand == MAX_STOCK
