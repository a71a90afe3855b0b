"""Mails from templates: plain text and HTML for each, rendered with Jinja.

The HTML templates escape everything they insert (a name like ``<script>`` arrives as
text); the plain-text ones render it as it is. Amounts are written for the configured locale
with each currency's own minor units (Babel), from integers, never through a float.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from shop_notifications.adapters.mail import sender_domain
from shop_notifications.application.ports import Mail, Recipient
from shop_notifications.domain.model import Delivery, Template

# Message-IDs are uuid5 of (event, template) in this namespace: a resend carries the same one.
_MESSAGE_IDS = uuid.UUID("6f1f3c52-7d55-4d8e-9a43-2b7a7c1b9e10")


def message_id(event_id: uuid.UUID, template: Template, domain: str) -> str:
    return f"<{uuid.uuid5(_MESSAGE_IDS, f'{event_id}/{template}')}@{domain}>"


class TemplateComposer:
    def __init__(
        self, *, shop_name: str, sender: str, locale: str, subjects: Mapping[Template, str]
    ) -> None:
        self._shop_name = shop_name
        self._domain = sender_domain(sender)
        self._subjects = subjects
        self._locale = locale
        # ``.html`` templates escape what they insert; ``.txt`` ones are plain text.
        self._templates = Environment(
            loader=PackageLoader("shop_notifications.adapters", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self._templates.filters["money"] = self.money

    def money(self, amount: Mapping[str, Any]) -> str:
        currency: str = amount["currency"]
        digits = get_currency_precision(currency)
        value = Decimal(int(amount["amount"])).scaleb(-digits)
        return format_currency(value, currency, locale=self._locale)

    def compose(self, delivery: Delivery, recipient: Recipient, facts: Mapping[str, Any]) -> Mail:
        if delivery.recipient is None:
            raise ValueError("a delivery without a recipient is not composed")
        context = {
            **facts,
            "shop_name": self._shop_name,
            "name": recipient.name or "",
            "email": delivery.recipient,
        }
        subject = self._subjects[delivery.template].format(
            shop_name=self._shop_name, order_id=facts.get("order_id", "")
        )
        return Mail(
            message_id=message_id(delivery.event_id, delivery.template, self._domain),
            to=delivery.recipient,
            subject=subject,
            text=self._templates.get_template(f"{delivery.template}.txt").render(context),
            html=self._templates.get_template(f"{delivery.template}.html").render(context),
        )
