"""What notifications does when users and orders tell their news: send the mail the news
calls for, and forget an erased account's address.

A mail's subscription has a transaction of its own (``module.py``): the unit of work its
handler is given commits the delivery log's records before and after the mail leaves.
Forgetting an address runs in the delivery's, with the record that the erasure was handled.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from shop_kernel.unit_of_work import UnitOfWork
from shop_notifications.application.mailing import Mailing
from shop_notifications.application.ports import Recipient
from shop_notifications.domain.model import Template
from shop_orders_contract import OrderCancelled, OrderConfirmed, OrderEvent, OrderRejected
from shop_users_contract import PasswordResetRequested, ResetTokens, UserContacts, UserState


class Welcome:
    def __init__(self, mailing: Mailing) -> None:
        self._mailing = mailing

    async def __call__(self, event: UserState, uow: UnitOfWork) -> None:
        await self._mailing.send(uow, event.event_id, "welcome", event.user_id, {})


class ForgetRecipient:
    """An erasure: the delivery log forgets the address, nothing more is sent to it."""

    def __init__(self, mailing: Mailing) -> None:
        self._mailing = mailing

    async def __call__(self, event: UserState, uow: UnitOfWork) -> None:
        await self._mailing.forget(uow, event.user_id)


class UsersRecipients:
    """``Recipients`` from the users context's contacts, asked for when a mail is written."""

    def __init__(self, contacts: UserContacts) -> None:
        self._contacts = contacts

    async def get(self, user_id: uuid.UUID) -> Recipient | None:
        contact = await self._contacts.contact(user_id)
        return None if contact is None else Recipient(user_id, contact.email, contact.name)


_TEMPLATES: dict[type[OrderEvent], Template] = {
    OrderConfirmed: "order_confirmed",
    OrderRejected: "order_rejected",
    OrderCancelled: "order_cancelled",
}


class OrderMail:
    """Confirmed, rejected, and cancelled after it was placed: the customer hears of it."""

    def __init__(self, mailing: Mailing) -> None:
        self._mailing = mailing

    async def __call__(self, event: OrderEvent, uow: UnitOfWork) -> None:
        if isinstance(event, OrderCancelled) and event.previous_status == "draft":
            return  # a cart given up was never an order to the customer
        order = event.order
        facts: dict[str, Any] = {
            "order_id": str(order.id),
            "lines": msgspec.to_builtins(order.lines),
            "total": msgspec.to_builtins(order.total),
            "short_skus": list(event.short_skus) if isinstance(event, OrderRejected) else [],
        }
        template = _TEMPLATES[type(event)]
        await self._mailing.send(uow, event.event_id, template, order.customer_id, facts)


class PasswordResetMail:
    """The reset link, with a token made for this mail alone (never kept in an event)."""

    def __init__(self, mailing: Mailing, tokens: ResetTokens, links: ResetLinks) -> None:
        self._mailing = mailing
        self._tokens = tokens
        self._links = links

    async def __call__(self, event: PasswordResetRequested, uow: UnitOfWork) -> None:
        async def facts() -> dict[str, Any] | None:
            token = await self._tokens.issue(event.user_id)
            return None if token is None else {"link": self._links.link(token)}

        await self._mailing.send(uow, event.event_id, "password_reset", event.user_id, facts)


class ResetLinks:
    """Where a reset link leads: the storefront's page under ``SHOP_PUBLIC_URL``. The token
    goes in the fragment, which browsers never send to a server (no access log holds it)."""

    def __init__(self, public_url: str) -> None:
        self._base = public_url.rstrip("/")

    def link(self, token: str) -> str:
        return f"{self._base}/password-reset#token={token}"
