"""The PostgreSQL write store: one async engine per process; work runs on its connections.

The service speaks SQLAlchemy Core (tables and statements), never the ORM: repositories map
rows to aggregates in plain code, and a transaction is an ``AsyncConnection``.

Every call is bounded (README "Timeouts"): connecting by ``connect_timeout`` in the URL
itself, so that every connection made from it has it (the engines', the migrations', the
relay's LISTEN); waiting for a pooled connection by the pool; a statement, a lock wait and a
transaction left idle by the server (``statement_timeout``, ``lock_timeout``,
``idle_in_transaction_session_timeout``, set when the engine's connections start); and a
server that stops answering altogether by the connection itself (:class:`AnsweringConnection`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

import msgspec
import psycopg
from psycopg.abc import PQGen
from psycopg.conninfo import make_conninfo
from psycopg.types.json import set_json_loads
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Row,
    Table,
    Text,
    Uuid,
    make_url,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeEngine

from shop_kernel.domain import AggregateRoot, ConcurrentChange
from shop_kernel.settings import Settings, SettingsError, env_name
from shop_kernel.unit_of_work import UnitOfWork

RV = TypeVar("RV")
_STATE = "shop_state"  # a column's info marks it as a field of the state the table holds
A = TypeVar("A", bound=AggregateRoot)


def database_url(settings: Settings) -> str:
    """The configured URL in the form SQLAlchemy's psycopg 3 dialect expects, with its
    ``connect_timeout`` (unless the URL names its own)."""
    url = normalise_database_url(settings.require("database_url"))
    if "connect_timeout" in make_url(url).query:
        return url
    # Appended, not re-rendered: the rest of the URL reaches libpq exactly as configured.
    return f"{url}{'&' if '?' in url else '?'}connect_timeout={int(settings.db_connect_timeout)}"


def normalise_database_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    raise SettingsError(f"{env_name('database_url')}: not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    """The same database as a plain ``postgresql://`` URL, for psycopg and libpq directly."""
    return "postgresql://" + normalise_database_url(url).removeprefix("postgresql+psycopg://")


class ServerSilent(psycopg.OperationalError):
    """The server did not answer within the time a connection gives it; the connection is
    closed (the pool replaces it)."""


class AnsweringConnection(psycopg.AsyncConnection[Any]):
    """A connection that gives up on a server that stopped answering.

    libpq has no read timeout, and ``statement_timeout`` is the server's own: a server that
    hangs while its host still acknowledges TCP would hold the connection, and the request on
    it, forever. Here every exchange with the server (a statement, a fetch, a commit) must be
    over within ``answer_within`` seconds, which is longer than the server's own bounds, so
    that a server that answers reports its own timeout first.
    """

    answer_within: float | None = None

    async def wait(
        self,
        gen: PQGen[RV],
        interval: float | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - psycopg's own signature
    ) -> RV:
        # Every round trip of psycopg goes through here. A wait psycopg bounds itself (while
        # it listens for notifications) keeps its own bound.
        bound = self.answer_within if timeout is None else timeout
        try:
            if interval is None:
                return await super().wait(gen, timeout=bound)
            return await super().wait(gen, interval, bound)
        except psycopg.errors._WaitTimeout:  # pyright: ignore[reportPrivateUsage] - psycopg's signal that `timeout` ran out
            if timeout is not None:
                raise
            self.pgconn.finish()  # a reply still on its way must not meet the next statement
            raise ServerSilent(f"PostgreSQL did not answer within {bound:g} s") from None


def session_options(settings: Settings, given: str | None = None) -> str:
    """The server's bounds for a session, as libpq ``options``; ``given`` (the URL's own)
    comes last, so what the URL sets wins."""
    bounds = {
        "statement_timeout": settings.db_statement_timeout,
        "lock_timeout": settings.db_lock_timeout,
        "idle_in_transaction_session_timeout": settings.db_idle_in_transaction_timeout,
    }
    ours = " ".join(f"-c {name}={round(seconds * 1000)}" for name, seconds in bounds.items())
    return f"{ours} {given}" if given else ours


def create_engine(
    settings: Settings,
    *,
    application_name: str = "shop",
    pre_ping: bool = True,
    long_running: bool = False,
) -> AsyncEngine:
    """The process's engine. ``pre_ping`` tests each pooled connection before handing it out.

    The ping is a round trip on every checkout. The API and the worker skip it: a connection
    the server dropped (a restart, a failover) fails the one request or delivery that meets
    it (a 503 to retry, or a retried delivery), and the pool then replaces every connection
    older than the failure.

    ``long_running`` is for an operator's job (``shop projections rebuild``) whose statements
    and transactions last as long as the data needs: its connections are bounded only in
    connecting and in waiting for the pool, never cut off in the middle of the work.
    """
    configured = database_url(settings)
    url = make_url(configured)
    extra: dict[str, str] = {"application_name": application_name}
    answer_within: float | None = None
    if not long_running:
        given = url.query.get("options")
        extra["options"] = session_options(settings, given if isinstance(given, str) else None)
        # The server's bounds first, then as long again as connecting may take.
        answer_within = settings.db_statement_timeout + settings.db_connect_timeout
    conninfo = make_conninfo(libpq_url(configured), **extra)

    async def connect() -> AnsweringConnection:
        connection = await AnsweringConnection.connect(conninfo)
        connection.answer_within = answer_within
        # JSON columns (an order's lines) are read by msgspec, not the standard library.
        set_json_loads(msgspec.json.decode, connection)
        return connection

    return create_async_engine(
        url,
        async_creator=connect,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
    )


async def update_versioned(
    uow: UnitOfWork,
    table: Table,
    key: Mapping[str, Any],
    aggregate: AggregateRoot,
    values: Mapping[str, Any],
    *,
    name: str,
) -> None:
    """Write ``values`` to the row ``key`` selects (the aggregate called ``name``), only if it
    still holds the version ``aggregate`` was read at, with the events the aggregate has
    recorded (one round trip: :meth:`UnitOfWork.write`).

    Every repository's save goes through here, so a concurrent change is never lost: the
    loser gets ``ConcurrentChange`` and its transaction applies nothing.
    """
    read_at = aggregate.version
    aggregate.saved_as(read_at + 1)  # its events report the version they are saved with
    written = await uow.write(
        table, aggregate, mode="update", key=key, read_at=read_at,
        values={**values, "version": read_at + 1},
    )  # fmt: skip
    if written != 1:
        raise ConcurrentChange(name)


# ------------------------------------------------------------------------------ state tables


def state_columns(
    kind: type[msgspec.Struct], *, key: str, apart: Collection[str] = ()
) -> list[Column[Any]]:
    """A column for each field of the snapshot ``kind`` (``key`` the primary key), but for
    those the table stores ``apart`` in a form of its own: a table that holds a state is
    its snapshot, so a field added to the snapshot is a column of the same name (a
    migration adds it to the database)."""
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    return [
        Column(field.name, _column_type(field.type), primary_key=field.name == key,
               nullable=_nullable(field.type), server_default=_server_default(field.default),
               info={_STATE: True})
        for field in info.fields
        if field.name not in apart
    ]  # fmt: skip


def _server_default(default: Any) -> str | None:
    """A field's default as its column's: a release that does not know the field yet (during
    a rolling deploy) still inserts rows, which then hold what the field means by default."""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, (str, int)):
        return str(default)
    return None


def state_values(state: object, table: Table, *, apart: Collection[str] = ()) -> dict[str, Any]:
    """The values for the columns of ``table`` made by :func:`state_columns`, but for those
    it stores ``apart``: each from the attribute of its name of ``state`` (a snapshot, or
    the aggregate itself, as a snapshot is made from it), nested values as JSON, ids and
    times as themselves."""
    return {
        name: _column_value(getattr(state, name)) for name in _state_names(table, frozenset(apart))
    }


@functools.lru_cache(maxsize=256)
def _state_names(table: Table, apart: frozenset[str]) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if c.info.get(_STATE) and c.name not in apart)


_SCALARS = (str, int, float, bool, uuid.UUID, datetime, date, type(None))


def _column_value(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    return msgspec.to_builtins(value, builtin_types=(uuid.UUID, datetime, date))


Columns = Row[Any] | Mapping[str, Any]  # a row of SQLAlchemy's, or of the driver's


def columns_of(row: Columns) -> dict[str, Any]:
    """A row's values by column name, whichever way it was read."""
    mapping: Mapping[Any, Any] = row if isinstance(row, Mapping) else row._mapping  # pyright: ignore[reportPrivateUsage] - SQLAlchemy's public row mapping
    return {str(name): value for name, value in mapping.items()}


def restored_from(row: Columns, kind: type[A], **apart: Any) -> A:
    """The aggregate ``kind`` a row holds, at the row's version: each field from the column
    of its name, or from ``apart`` (in its wire form) where the table keeps it otherwise."""
    return msgspec.convert({**columns_of(row), **apart}, kind)


def _nullable(field_type: msgspec.inspect.Type) -> bool:
    return isinstance(field_type, msgspec.inspect.UnionType) and field_type.includes_none


def _column_type(field_type: msgspec.inspect.Type) -> TypeEngine[Any]:
    if isinstance(field_type, msgspec.inspect.UnionType):
        rest = [t for t in field_type.types if not isinstance(t, msgspec.inspect.NoneType)]
        return _column_type(rest[0]) if len(rest) == 1 else JSONB()
    simple: dict[type[msgspec.inspect.Type], TypeEngine[Any]] = {
        msgspec.inspect.UUIDType: Uuid(),
        msgspec.inspect.StrType: Text(),
        msgspec.inspect.LiteralType: Text(),
        msgspec.inspect.IntType: BigInteger(),
        msgspec.inspect.BoolType: Boolean(),
        msgspec.inspect.FloatType: Float(),
        msgspec.inspect.DateTimeType: DateTime(timezone=True),
    }
    return simple.get(type(field_type), JSONB())
