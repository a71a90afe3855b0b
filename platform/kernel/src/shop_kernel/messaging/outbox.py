"""Writing integration events into the outbox, inside the transaction of the change itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Text, func, insert, literal, null, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shop_kernel.log import current_request_id
from shop_kernel.messaging.events import IntegrationEvent, event_tag
from shop_kernel.messaging.tables import outbox

CHANNEL = "shop_outbox"


def outbox_row(event: IntegrationEvent, *, traceparent: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_type": event_tag(type(event)),
        "aggregate_id": event.aggregate_id,
        "aggregate_version": event.aggregate_version,
        "payload": msgspec.to_builtins(event),
        "request_id": current_request_id(),
        "traceparent": traceparent,
    }


NOTIFY = text(f"NOTIFY {CHANNEL}")


async def forget_in_outbox(
    connection: AsyncConnection, aggregate_id: str, fields: Sequence[str]
) -> None:
    """Blank ``fields`` in every outbox event of the aggregate (erasure of personal data).

    Events not yet delivered then carry nothing personal either, which is what a subscriber
    of an erased account must see.
    """
    blanks = func.jsonb_build_object(
        *(part for name in fields for part in (literal(name, Text), null()))
    )
    await connection.execute(
        update(outbox)
        .where(outbox.c.aggregate_id == aggregate_id)
        .values(payload=outbox.c.payload.op("||")(blanks))
    )


async def append_to_outbox(connection: AsyncConnection, events: Sequence[IntegrationEvent]) -> None:
    """Insert ``events`` and wake the relay; both take effect only when the transaction commits."""
    if not events:
        return
    await connection.execute(insert(outbox), [outbox_row(event) for event in events])
    await connection.execute(NOTIFY)
