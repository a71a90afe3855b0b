"""``GET /notifications`` (admins): the delivery log, newest first."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from shop_kernel.auth import admin_only
from shop_kernel.di import provide
from shop_kernel.pages import NO_CONTROL_CHARACTERS, Cursor, Limit, page_start
from shop_notifications.adapters.sql import DeliveryLog
from shop_notifications.adapters.translations import delivery_snapshot
from shop_notifications_contract import DeliverySnapshot

_CURSOR = re.compile(r"(?P<at>[0-9T:.+\-]{19,40})\|(?P<id>[0-9a-f\-]{36})")


class DeliveryPage(msgspec.Struct):
    items: list[DeliverySnapshot]
    next_cursor: str | None


def _is_cursor(key: str) -> bool:
    found = _CURSOR.fullmatch(key)
    if found is None:
        return False
    try:
        datetime.fromisoformat(found["at"])
        uuid.UUID(found["id"])
    except ValueError:
        return False
    return True


class NotificationsController(Controller):
    path = "/notifications"
    tags = ("notifications",)
    guards = [admin_only]  # noqa: RUF012
    dependencies = {"log": provide(DeliveryLog)}  # noqa: RUF012

    @get("/")
    async def deliveries(
        self,
        log: NamedDependency[DeliveryLog],
        recipient: Annotated[
            str | None, QueryParameter(max_length=320, pattern=NO_CONTROL_CHARACTERS)
        ] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> DeliveryPage:
        """Every email the shop sent or tried to send (admins), optionally to one address."""
        key = page_start(recipient, cursor, valid_key=_is_cursor, text_parameter="recipient")
        after = None
        if key is not None:
            at, _, delivery_id = key.partition("|")
            after = (datetime.fromisoformat(at), uuid.UUID(delivery_id))
        deliveries, next_cursor = await log.page(recipient=recipient, limit=limit, after=after)
        items = [delivery_snapshot(delivery) for delivery in deliveries]
        return DeliveryPage(items=items, next_cursor=next_cursor)
