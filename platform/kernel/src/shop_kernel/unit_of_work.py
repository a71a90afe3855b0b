"""One business transaction against the write store, as an async context manager.

A use case is handed its unit of work and says where the transaction is: ``async with uow:``
begins it, ``await uow.commit()`` commits it, and leaving the block without a commit (or with
an exception) rolls it back. ``commit()`` also writes the integration events of the
aggregates the unit of work saw into the outbox, in the same transaction, so an event is
published if and only if its change is committed.

Entering a unit of work that is already open opens a savepoint inside it: a subscriber's
delivery opens the unit of work, records the event as handled, and hands it to the handler;
the use case the handler calls enters it again, and its commit is the savepoint's. The
delivery's own commit then makes the change, its events and the handled record durable
together. A unit of work made ``within`` a transaction someone else owns (a request with an
``Idempotency-Key``) works in savepoints of that transaction, which its owner commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, LiteralString, Protocol, Self, cast

import psycopg
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shop_kernel.domain import AggregateRoot, DomainEvent
from shop_kernel.driver import driver_of
from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.writes import Mode, run_write

# Turns what an aggregate recorded into what other contexts are told (or None: internal).
EventTranslator = Callable[[AggregateRoot, DomainEvent], IntegrationEvent | None]


def publish_nothing(_aggregate: AggregateRoot, _event: DomainEvent) -> None:
    return None


class JoinableTransaction(Protocol):
    """A transaction that units of work join: its connection, which it may check out and
    begin only when the first of them asks (so nothing is held before it is needed)."""

    async def connection(self) -> AsyncConnection: ...


class UnitOfWorkNotStarted(RuntimeError):
    """The unit of work was used outside its ``async with`` block."""


@dataclass
class _Level:
    """One level of an open unit of work: the transaction itself (no savepoint) or a
    savepoint in it, with the aggregates and events that level will commit."""

    savepoint: str | None  # its name; None for the transaction itself
    seen: list[AggregateRoot] = field(default_factory=list[AggregateRoot])
    published: list[IntegrationEvent] = field(default_factory=list[IntegrationEvent])
    open: bool = True  # neither committed nor rolled back yet


class UnitOfWork:
    def __init__(
        self,
        engine: AsyncEngine,
        translate: EventTranslator = publish_nothing,
        *,
        within: JoinableTransaction | None = None,
    ) -> None:
        self._engine = engine
        self._translate = translate
        self._within = within
        self._connection: AsyncConnection | None = None
        self._driver: psycopg.AsyncConnection[Any] | None = None
        self._levels: list[_Level] = []
        # The depth of a savepoint that is done with (committed, or rolled back to) but not
        # released yet: its release is sent with the next savepoint at that depth, or left
        # to the transaction's end, which covers it (one round trip less per nested level).
        self._unreleased: int | None = None

    @property
    def connection(self) -> AsyncConnection:
        """The transaction's connection: repositories run their Core statements on it."""
        if self._connection is None:
            raise UnitOfWorkNotStarted("use the unit of work inside `async with`")
        return self._connection

    @property
    def is_open(self) -> bool:
        return bool(self._levels)

    async def __aenter__(self) -> Self:
        # The transaction begins with its first statement (the driver's implicit BEGIN);
        # savepoints are the driver's too: no SQLAlchemy round of its own for either.
        if self._connection is None:
            if self._within is not None:
                self._connection = await self._within.connection()
            else:
                self._connection = await self._engine.connect()
                self._levels.append(_Level(None))
                return self
        depth = len(self._levels) + 1
        statement = f"SAVEPOINT uow_{depth}"
        if self._unreleased is not None and self._unreleased >= depth:
            # Released together with the new one's making (two statements, one round trip):
            # a transaction holds few savepoints, however many levels it nests in turn.
            statement = f"RELEASE SAVEPOINT uow_{depth}; {statement}"
            self._unreleased = None
        try:
            await (await self.driver()).execute(cast("LiteralString", statement))
        except BaseException:
            if not self._levels:  # joined someone else's transaction: it stays theirs
                self._connection = self._driver = None
            raise
        self._levels.append(_Level(f"uow_{depth}"))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        level = self._levels[-1]
        try:
            if level.open:
                await self._undo(level)
        finally:
            self._levels.pop()
            connection = self.connection
            if not self._levels:
                self._connection = self._driver = None
                self._unreleased = None  # the transaction's end covers it (or its owner's)
                if level.savepoint is None:
                    await connection.close()

    def _level(self) -> _Level:
        if not self._levels:
            raise UnitOfWorkNotStarted("use the unit of work inside `async with`")
        return self._levels[-1]

    def track(self, aggregate: AggregateRoot) -> None:
        """Repositories call this for every aggregate they load or add."""
        seen = self._level().seen
        if not any(known is aggregate for known in seen):
            seen.append(aggregate)

    def publish(self, event: IntegrationEvent) -> None:
        """Publish ``event`` with this transaction (for events no aggregate records)."""
        self._level().published.append(event)

    async def driver(self) -> psycopg.AsyncConnection[Any]:
        """The transaction's own psycopg connection, for statements compiled once
        (``shop_kernel.writes``, ``shop_kernel.sql.Compiled``): no SQLAlchemy work per call."""
        if self._driver is None:
            self._driver = driver_of(self.connection)
        return self._driver

    async def write(
        self,
        table: Table,
        aggregate: AggregateRoot,
        *,
        values: Mapping[str, Any],
        mode: Mode = "insert",
        key: Mapping[str, Any] | None = None,
        read_at: int | None = None,
    ) -> int:
        """Save ``aggregate`` (at the version it now has) into ``table`` together with the
        events it has recorded: the change, their outbox rows and the relays' wake-up take
        one round trip (``shop_kernel.writes``). An insert, one that skips an existing key,
        or an update of the row ``key`` selects if it still holds ``read_at``. The events are
        written only if a row was; return how many rows were written."""
        self.track(aggregate)
        events = self._translated(aggregate, aggregate.pull_events())
        return await run_write(
            await self.driver(), table, mode=mode, values=values, key=key, read_at=read_at,
            events=events,
        )  # fmt: skip

    def _translated(
        self, aggregate: AggregateRoot, recorded: list[DomainEvent]
    ) -> list[IntegrationEvent]:
        translated = (self._translate(aggregate, event) for event in recorded)
        return [event for event in translated if event is not None]

    async def commit(self) -> None:
        """Commit the innermost level: the transaction, or the savepoint of a nested one.
        The events recorded since their aggregates were written go to the outbox first."""
        level = self._level()
        events, level.published = level.published, []
        for aggregate in level.seen:
            events += self._translated(aggregate, aggregate.pull_events())
        if events:
            await run_write(await self.driver(), None, events=events)
        level.open = False
        if level.savepoint is not None:
            self._done_with_savepoint()  # its changes count from here: nothing to send
        elif self.connection.in_transaction():  # a statement went through SQLAlchemy
            await self.connection.commit()
        else:
            await (await self.driver()).commit()

    async def rollback(self) -> None:
        level = self._level()
        level.published = []
        for aggregate in level.seen:
            aggregate.pull_events()
        await self._undo(level)

    async def _undo(self, level: _Level) -> None:
        level.open = False
        if level.savepoint is not None:
            await (await self.driver()).execute(
                _statement("ROLLBACK TO SAVEPOINT", level.savepoint)
            )
            self._done_with_savepoint()  # rolled back to, it is still there
        elif self.connection.in_transaction():
            await self.connection.rollback()
        else:
            await (await self.driver()).rollback()

    def _done_with_savepoint(self) -> None:
        """The innermost level's savepoint is done with; those deeper are gone or covered
        by its release."""
        depth = len(self._levels)  # the innermost level's savepoint is uow_<depth>
        self._unreleased = depth if self._unreleased is None else min(self._unreleased, depth)


def _statement(verb: str, savepoint: str) -> LiteralString:
    """A savepoint statement: its name is the unit of work's own (``uow_<depth>``)."""
    return cast("LiteralString", f"{verb} {savepoint}")


class Transactions:
    """Makes units of work on the process's write store (the container holds one)."""

    def __init__(self, engine: AsyncEngine, translate: EventTranslator = publish_nothing) -> None:
        self.engine = engine
        self._translate = translate

    def unit_of_work(self, *, within: JoinableTransaction | None = None) -> UnitOfWork:
        """A new unit of work, not yet begun; ``within`` a transaction someone else owns."""
        return UnitOfWork(self.engine, self._translate, within=within)
