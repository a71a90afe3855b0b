"""One business transaction against the write store, as an async context manager.

Nothing is committed implicitly: a use case calls ``commit()`` once it has decided; leaving
the block without it (or with an exception) rolls everything back. ``commit()`` also writes
the integration events of the aggregates the unit of work saw into the outbox, in the same
transaction, so an event is published if and only if its change is committed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Protocol, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from shop_kernel.domain import AggregateRoot, DomainEvent
from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.messaging.outbox import append_to_outbox

# Turns what an aggregate recorded into what other contexts are told (or None: internal).
EventTranslator = Callable[[AggregateRoot, DomainEvent], IntegrationEvent | None]


def publish_nothing(_aggregate: AggregateRoot, _event: DomainEvent) -> None:
    return None


T = TypeVar("T")


class JoinableTransaction(Protocol):
    """A transaction that units of work join: its connection, which it may check out and
    begin only when the first of them asks (so nothing is held before it is needed)."""

    async def connection(self) -> AsyncConnection: ...


class _Begun:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def connection(self) -> AsyncConnection:
        return self._connection


_joined: ContextVar[JoinableTransaction | None] = ContextVar(
    "shop_joined_transaction", default=None
)


@contextmanager
def joined(transaction: AsyncConnection | JoinableTransaction) -> Generator[None]:
    """Units of work opened in this block (and the tasks it starts) join ``transaction``,
    each in its own savepoint; the caller commits or rolls back the whole."""
    outer = _Begun(transaction) if isinstance(transaction, AsyncConnection) else transaction
    token = _joined.set(outer)
    try:
        yield
    finally:
        _joined.reset(token)


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncGenerator[AsyncConnection]:
    """A connection for reads outside any unit of work: the joined transaction's when there
    is one, else one from the pool. A request that already holds a connection must not wait
    for a second one: with as many such requests as the pool has connections, each would
    wait for the others until the pool's timeout."""
    outer = _joined.get()
    if outer is not None:
        yield await outer.connection()
        return
    async with engine.connect() as connection:
        yield connection


@contextmanager
def separately() -> Generator[None]:
    """Units of work opened in this block commit on their own, even inside :func:`joined`: for
    work whose outside effect (an email sent) must be recorded before and after it happens."""
    token = _joined.set(None)
    try:
        yield
    finally:
        _joined.reset(token)


def transactions(
    unit_of_work: Callable[[], UnitOfWork], wrap: Callable[[UnitOfWork], T]
) -> Callable[[], AbstractAsyncContextManager[T]]:
    """A context's own transaction type on the kernel's unit of work: each call opens one.

    ``wrap`` gives the context's view of it (its repositories and ``commit``).
    """

    @asynccontextmanager
    async def transaction() -> AsyncGenerator[T]:
        async with unit_of_work() as uow:
            yield wrap(uow)

    return transaction


class ContextTransaction:
    """Base of a context's transaction type: it adds its repositories over the unit of work;
    ``commit`` is the unit of work's."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def commit(self) -> None:
        await self._uow.commit()


class UnitOfWorkNotStarted(RuntimeError):
    """The unit of work was used outside its ``async with`` block."""


class UnitOfWork:
    def __init__(self, engine: AsyncEngine, translate: EventTranslator = publish_nothing) -> None:
        self._engine = engine
        self._translate = translate
        self._connection: AsyncConnection | None = None
        self._savepoint: AsyncTransaction | None = None
        self._seen: list[AggregateRoot] = []
        self._published: list[IntegrationEvent] = []

    @property
    def connection(self) -> AsyncConnection:
        """The transaction's connection: repositories run their Core statements on it."""
        if self._connection is None:
            raise UnitOfWorkNotStarted("use the unit of work inside `async with`")
        return self._connection

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("a unit of work cannot be entered twice at once")
        self._seen, self._published = [], []
        outer = _joined.get()
        if outer is not None:
            connection = await outer.connection()
            self._savepoint = await connection.begin_nested()
            self._connection = connection
            return self
        connection = await self._engine.connect()
        try:
            await connection.begin()
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self.connection, None
        savepoint, self._savepoint = self._savepoint, None
        self._seen, self._published = [], []
        if savepoint is not None:
            if savepoint.is_active:
                await savepoint.rollback()
            return
        try:
            if connection.in_transaction():
                await connection.rollback()
        finally:
            await connection.close()

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
        await append_to_outbox(self.connection, events)
        if self._savepoint is not None:
            await self._savepoint.commit()
        else:
            await self.connection.commit()

    async def rollback(self) -> None:
        self._published = []
        for aggregate in self._seen:
            aggregate.pull_events()
        if self._savepoint is not None:
            await self._savepoint.rollback()
        else:
            await self.connection.rollback()
