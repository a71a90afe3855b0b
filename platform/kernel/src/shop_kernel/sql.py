"""The PostgreSQL write store: one async engine per process; work runs on its connections.

The service speaks SQLAlchemy Core (tables and statements), never the ORM: repositories map
rows to aggregates in plain code, and a transaction is an ``AsyncConnection``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Table, make_url, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shop_kernel.domain import AggregateRoot, ConcurrentChange
from shop_kernel.settings import Settings, SettingsError, env_name


def database_url(settings: Settings) -> str:
    """The configured URL in the form SQLAlchemy's psycopg 3 dialect expects."""
    return normalise_database_url(settings.require("database_url"))


def normalise_database_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    raise SettingsError(f"{env_name('database_url')}: not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    """The same database as a plain ``postgresql://`` URL, for psycopg and libpq directly."""
    return "postgresql://" + normalise_database_url(url).removeprefix("postgresql+psycopg://")


def create_engine(
    settings: Settings, *, application_name: str = "shop", pre_ping: bool = True
) -> AsyncEngine:
    """The process's engine. ``pre_ping`` tests each pooled connection before handing it out.

    The ping is a round trip on every checkout. The API and the worker skip it: a connection
    the server dropped (a restart, a failover) fails the one request or delivery that meets
    it (a 503 to retry, or a retried delivery), and the pool then replaces every connection
    older than the failure.
    """
    url = make_url(database_url(settings))
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        connect_args={"application_name": application_name},
    )


async def update_versioned(
    connection: AsyncConnection,
    table: Table,
    key: ColumnElement[bool],
    aggregate: AggregateRoot,
    values: Mapping[str, Any],
    *,
    name: str,
) -> None:
    """Write ``values`` to the row ``key`` selects (the aggregate called ``name``), only if it
    still holds the version ``aggregate`` was read at.

    Every repository's save goes through here, so a concurrent change is never lost: the
    loser gets ``ConcurrentChange`` and its transaction applies nothing.
    """
    result = await connection.execute(
        update(table)
        .where(key, table.c.version == aggregate.version)
        .values(**values, version=aggregate.version + 1)
    )
    if result.rowcount != 1:
        raise ConcurrentChange(name)
    aggregate.saved_as(aggregate.version + 1)
