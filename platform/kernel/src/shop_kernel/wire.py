"""Shapes every context shares on the wire: in its published language and in its HTTP bodies.

Money travels one way only (API.md): ``{"amount": <integer minor units>, "currency": "EUR"}``,
never a float. Events, views and responses carry :class:`Amount`; the domain computes with
:class:`~shop_kernel.domain.Money`.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from shop_kernel.domain import Money

# Up to the largest integer every JSON parser reads exactly.
MAX_MINOR_UNITS = 2**53 - 1


class Amount(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Money on the wire: integer minor units of an ISO 4217 currency."""

    amount: Annotated[int, msgspec.Meta(ge=0, le=MAX_MINOR_UNITS)]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]

    @classmethod
    def of(cls, money: Money) -> Amount:
        return cls(money.amount, money.currency)
