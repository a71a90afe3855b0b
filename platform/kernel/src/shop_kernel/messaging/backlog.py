"""How far behind the backbone is: the outbox's unpublished events (parked ones, which no
running release knows, are counted apart: ``messaging.registry.unrouted``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.messaging.tables import outbox


@dataclass(frozen=True)
class OutboxBacklog:
    events: int
    oldest_age_seconds: float


async def outbox_backlog(engine: AsyncEngine) -> OutboxBacklog:
    query = select(
        func.count(),
        func.coalesce(func.extract("epoch", func.now() - func.min(outbox.c.created_at)), 0),
    ).where(outbox.c.published_at.is_(None), outbox.c.parked_at.is_(None))
    async with engine.connect() as conn:
        count, age = (await conn.execute(query)).one()
    return OutboxBacklog(int(count), max(0.0, float(age)))
