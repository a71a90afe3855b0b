"""What notifications does when users and orders tell their news: remember who to write to,
and send the mail the news calls for."""

from __future__ import annotations

from typing import Any

import msgspec

from shop_kernel.unit_of_work import UnitOfWork
from shop_notifications.application.mailing import Mailing
from shop_notifications.application.ports import Recipient
from shop_notifications.domain.model import Template
from shop_orders.contract import OrderCancelled, OrderConfirmed, OrderRejected, OrderState
from shop_users.contract import UserErased, UserRegistered, UserState


def _recipient(event: UserState) -> Recipient:
    return Recipient(
        user_id=event.user_id, email=event.email, name=event.name,
        erased=event.erased, version=event.aggregate_version,
    )  # fmt: skip


class Welcome:
    def __init__(self, mailing: Mailing) -> None:
        self._mailing = mailing

    async def __call__(self, event: UserRegistered, uow: UnitOfWork) -> None:
        await self._mailing.remember(_recipient(event))
        await self._mailing.send(event.event_id, "welcome", event.user_id, {})


class KeepRecipient:
    """Every change of an account keeps the address current; an erasure forgets it."""

    def __init__(self, mailing: Mailing) -> None:
        self._mailing = mailing

    async def __call__(self, event: UserState, uow: UnitOfWork) -> None:
        if isinstance(event, UserErased) or event.erased:
            await self._mailing.forget(_recipient(event))
        else:
            await self._mailing.remember(_recipient(event))


_TEMPLATES: dict[type[OrderState], Template] = {
    OrderConfirmed: "order_confirmed",
    OrderRejected: "order_rejected",
    OrderCancelled: "order_cancelled",
}


class OrderMail:
    """Confirmed, rejected, and cancelled after it was placed: the customer hears of it."""

    def __init__(self, mailing: Mailing) -> None:
        self._mailing = mailing

    async def __call__(self, event: OrderState, uow: UnitOfWork) -> None:
        if isinstance(event, OrderCancelled) and event.previous_status == "draft":
            return  # a cart given up was never an order to the customer
        facts: dict[str, Any] = {
            "order_id": str(event.order_id),
            "lines": msgspec.to_builtins(event.lines),
            "total": msgspec.to_builtins(event.total),
            "short_skus": list(event.short_skus) if isinstance(event, OrderRejected) else [],
        }
        await self._mailing.send(event.event_id, _TEMPLATES[type(event)], event.customer_id, facts)
