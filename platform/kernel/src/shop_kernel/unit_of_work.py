"""One business transaction against the write store, as an async context manager.

Nothing is committed implicitly: a use case calls ``commit()`` once it has decided; leaving
the block without it (or with an exception) rolls everything back. ``commit()`` also writes
the integration events of the aggregates the unit of work saw into the outbox, in the same
transaction, so an event is published if and only if its change is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shop_kernel.domain import AggregateRoot, DomainEvent
from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.messaging.outbox import append_to_outbox

# Turns what an aggregate recorded into what other contexts are told (or None: internal).
EventTranslator = Callable[[AggregateRoot, DomainEvent], IntegrationEvent | None]


def publish_nothing(_aggregate: AggregateRoot, _event: DomainEvent) -> None:
    return None


class UnitOfWorkNotStarted(RuntimeError):
    """The unit of work was used outside its ``async with`` block."""


class UnitOfWork:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        translate: EventTranslator = publish_nothing,
    ) -> None:
        self._session_factory = session_factory
        self._translate = translate
        self._session: AsyncSession | None = None
        self._seen: list[AggregateRoot] = []
        self._published: list[IntegrationEvent] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise UnitOfWorkNotStarted("use the unit of work inside `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("a unit of work cannot be entered twice at once")
        self._session = self._session_factory()
        self._seen, self._published = [], []
        await self._session.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self.session, None
        self._seen, self._published = [], []
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            await session.close()

    def track(self, aggregate: AggregateRoot) -> None:
        """Repositories call this for every aggregate they load or add."""
        if not any(seen is aggregate for seen in self._seen):
            self._seen.append(aggregate)

    def publish(self, event: IntegrationEvent) -> None:
        """Publish ``event`` with this transaction (for events no aggregate records)."""
        self._published.append(event)

    async def commit(self) -> None:
        events = [*self._published]
        for aggregate in self._seen:
            for recorded in aggregate.pull_events():
                translated = self._translate(aggregate, recorded)
                if translated is not None:
                    events.append(translated)
        self._published = []
        await append_to_outbox(self.session, events)
        await self.session.commit()

    async def rollback(self) -> None:
        self._published = []
        for aggregate in self._seen:
            aggregate.pull_events()
        await self.session.rollback()
