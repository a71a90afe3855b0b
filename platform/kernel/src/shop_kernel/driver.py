"""Statements compiled once and run on a transaction's own psycopg connection.

A hot path's statement is written with SQLAlchemy Core like every other, compiled to the
driver's SQL when the process first needs it, and then only bound and run: no statement is
built, keyed or compiled per call, and no call crosses SQLAlchemy's async bridge. psycopg
prepares it on the server after a few runs. Errors come out as SQLAlchemy raises them, so
they are answered and retried as every other statement's are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, LiteralString, cast

import psycopg
from psycopg.rows import dict_row
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ClauseElement

_DIALECT = PGDialect_psycopg()


@dataclass
class Compiled:
    """``statement`` (with named ``bindparam``s), compiled to the driver's SQL on first use."""

    statement: ClauseElement
    _sql: LiteralString | None = field(default=None, init=False)
    _constants: dict[str, Any] = field(default_factory=dict[str, Any], init=False)

    def bound(self, params: Mapping[str, Any]) -> tuple[LiteralString, dict[str, Any]]:
        if self._sql is None:
            compiled = self.statement.compile(dialect=_DIALECT)
            # The values the statement holds itself (a LIMIT, a channel's name).
            held: dict[str, Any] = dict(compiled.params or {})
            self._constants = {name: value for name, value in held.items() if value is not None}
            self._sql = cast("LiteralString", str(compiled))  # our own statement, not a value
        return self._sql, {**self._constants, **params}

    async def rows(
        self, connection: psycopg.AsyncConnection[Any], **params: Any
    ) -> list[dict[str, Any]]:
        """Every row, as a mapping of column names to values."""
        sql, bound = self.bound(params)
        try:
            async with connection.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(sql, bound)
                return await cursor.fetchall()
        except psycopg.Error as error:
            raise as_sqlalchemy_error(sql, bound, error) from error

    async def run(self, connection: psycopg.AsyncConnection[Any], **params: Any) -> int:
        """A statement that answers no rows: how many it changed."""
        sql, bound = self.bound(params)
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(sql, bound)
                return cursor.rowcount
        except psycopg.Error as error:
            raise as_sqlalchemy_error(sql, bound, error) from error

    async def first(
        self, connection: psycopg.AsyncConnection[Any], **params: Any
    ) -> dict[str, Any] | None:
        rows = await self.rows(connection, **params)
        return rows[0] if rows else None


def driver_of(connection: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under an open SQLAlchemy connection (already checked out of
    the pool, so no round of SQLAlchemy's async bridge is needed to reach it)."""
    driver: Any = connection.sync_connection.connection.driver_connection  # pyright: ignore[reportOptionalMemberAccess]
    return cast("psycopg.AsyncConnection[Any]", driver)


def as_sqlalchemy_error(
    sql: str, params: Mapping[str, Any], error: psycopg.Error
) -> StatementError:
    """The driver's error as SQLAlchemy raises it (an ``IntegrityError``, an
    ``OperationalError``...); the parameters never appear in it."""
    return DBAPIError.instance(sql, params, error, psycopg.Error, hide_parameters=True)
