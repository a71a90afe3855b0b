"""The outbox: integration events written inside the transaction of the change itself.

A unit of work writes them with the change they report (``shop_kernel.writes``): one statement
for the change, its rows here and the notification that wakes the relays. Erasure blanks
personal data in an aggregate's events that are still kept (:func:`forget_in_outbox`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Text, func, literal, null, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shop_kernel.messaging.tables import outbox

CHANNEL = "shop_outbox"
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
