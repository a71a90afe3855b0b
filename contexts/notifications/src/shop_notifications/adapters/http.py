"""``GET /notifications`` (admins): the delivery log, newest first."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from shop_kernel.auth import admin_only
from shop_kernel.di import provide
from shop_kernel.pages import NO_CONTROL_CHARACTERS, Cursor, Limit, page_start
from shop_notifications.adapters.sql import DeliveryLog
from shop_notifications.domain.model import Status, Template

_CURSOR = re.compile(r"(?P<at>[0-9T:.+\-]{19,40})\|(?P<id>[0-9a-f\-]{36})")


class DeliveryOut(msgspec.Struct):
    id: uuid.UUID
    event_id: uuid.UUID
    template: Template
    recipient: str | None
    status: Status
    attempts: int
    created_at: datetime
    sent_at: datetime | None


class DeliveryPage(msgspec.Struct):
    items: list[DeliveryOut]
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


def _out(row: Any) -> DeliveryOut:
    return DeliveryOut(
        id=row.id, event_id=row.event_id, template=row.template, recipient=row.recipient,
        status=row.status, attempts=row.attempts, created_at=row.created_at, sent_at=row.sent_at,
    )  # fmt: skip


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
        rows, next_cursor = await log.page(recipient=recipient, limit=limit, after=after)
        return DeliveryPage(items=[_out(row) for row in rows], next_cursor=next_cursor)
