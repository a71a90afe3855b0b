"""Money: integer minor units and an ISO 4217 currency; never a float, never mixed currencies."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shop_kernel.domain.errors import BusinessRuleViolated

# What a signed 64-bit integer column can hold: every amount stays storable.
MAX_MINOR_UNITS = 2**63 - 1
_CURRENCY = re.compile(r"[A-Z]{3}")


class MoneyOutOfRange(BusinessRuleViolated):
    """An amount below zero or beyond what the stores can hold."""


class CurrencyMismatch(BusinessRuleViolated):
    """Two amounts in different currencies were combined."""


@dataclass(frozen=True, order=False)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not _CURRENCY.fullmatch(self.currency):
            raise ValueError(f"not an ISO 4217 currency code: {self.currency!r}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError("money is counted in integer minor units")
        if not 0 <= self.amount <= MAX_MINOR_UNITS:
            raise MoneyOutOfRange(
                f"an amount must be 0..{MAX_MINOR_UNITS} minor units", amount=self.amount
            )

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def times(self, quantity: int) -> Money:
        if quantity < 0:
            raise MoneyOutOfRange("a quantity cannot be negative", quantity=quantity)
        return Money(self.amount * quantity, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(
                "amounts in different currencies", left=self.currency, right=other.currency
            )
