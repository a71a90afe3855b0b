"""Money arithmetic: integer minor units, one currency, never beyond what the stores hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shop_kernel.domain import CurrencyMismatch, Money, MoneyOutOfRange
from shop_kernel.domain.money import MAX_MINOR_UNITS

amounts = st.integers(min_value=0, max_value=MAX_MINOR_UNITS)


@given(amounts, amounts)
def test_a_sum_is_exact_or_refused_never_wrapped(a: int, b: int) -> None:
    if a + b > MAX_MINOR_UNITS:
        with pytest.raises(MoneyOutOfRange):
            Money(a, "EUR") + Money(b, "EUR")
    else:
        assert (Money(a, "EUR") + Money(b, "EUR")).amount == a + b


@given(amounts, st.integers(min_value=0, max_value=10_000))
def test_a_line_total_is_exact_or_refused(unit: int, quantity: int) -> None:
    if unit * quantity > MAX_MINOR_UNITS:
        with pytest.raises(MoneyOutOfRange):
            Money(unit, "EUR").times(quantity)
    else:
        assert Money(unit, "EUR").times(quantity) == Money(unit * quantity, "EUR")


def test_currencies_never_mix() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "€", ""])
def test_a_currency_is_three_capital_letters(currency: str) -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Money(1, currency)


@pytest.mark.parametrize("amount", [-1, 1.5, True])
def test_an_amount_is_a_non_negative_integer(amount: object) -> None:
    with pytest.raises((MoneyOutOfRange, TypeError)):
        Money(amount, "EUR")  # type: ignore[arg-type]
