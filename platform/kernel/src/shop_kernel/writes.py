"""One round trip per change: an aggregate's INSERT or versioned UPDATE, the outbox rows of
the events it recorded and the notification that wakes the relays, as one statement.

Each shape of statement (a table, the columns written, how many events) is built with
SQLAlchemy Core once per process and compiled to the driver's SQL; a write then only binds
its values and runs on the transaction's own psycopg connection (psycopg prepares it on the
server after a few runs). Nothing of SQLAlchemy runs per write: no statement is built,
keyed or compiled again.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import psycopg
from sqlalchemy import (
    CTE,
    Integer,
    Table,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import UpdateBase

from shop_kernel import tracing
from shop_kernel.driver import Compiled
from shop_kernel.log import current_request_id
from shop_kernel.messaging.events import IntegrationEvent, event_tag
from shop_kernel.messaging.outbox import CHANNEL
from shop_kernel.messaging.tables import outbox

_EVENT_COLUMNS = (
    "event_id", "event_type", "aggregate_id", "aggregate_version", "payload", "request_id",
    "traceparent",
)  # fmt: skip

Mode = Literal["insert", "insert-or-skip", "update"]


@dataclass(frozen=True)
class _Shape:
    table: Table
    mode: Mode
    columns: tuple[str, ...]  # written
    keys: tuple[str, ...]  # what selects the row of an update
    events: int


def _event_params(number: int, event: IntegrationEvent) -> dict[str, Any]:
    return {
        f"e{number}_event_id": event.event_id,
        f"e{number}_event_type": event_tag(type(event)),
        f"e{number}_aggregate_id": event.aggregate_id,
        f"e{number}_aggregate_version": event.aggregate_version,
        f"e{number}_payload": msgspec.json.encode(event).decode(),
        f"e{number}_request_id": current_request_id(),
        f"e{number}_traceparent": tracing.current_traceparent(),
    }


def _write_statement(shape: _Shape) -> UpdateBase:
    table = shape.table
    values = {
        column: bindparam(f"v_{column}", type_=table.c[column].type) for column in shape.columns
    }
    if shape.mode == "update":
        return (
            update(table)
            .where(
                *(
                    table.c[key] == bindparam(f"k_{key}", type_=table.c[key].type)
                    for key in shape.keys
                ),
                table.c.version == bindparam("read_at", type_=Integer),
            )
            .values(values)
        )
    if shape.mode == "insert-or-skip":
        return pg_insert(table).values(values).on_conflict_do_nothing()
    return insert(table).values(values)


def _queued(number: int, written: CTE | None) -> CTE:
    source = select(
        *(
            cast(bindparam(f"e{number}_{column}", type_=outbox.c[column].type),
                 outbox.c[column].type).label(column)
            for column in _EVENT_COLUMNS
        )
    )  # fmt: skip
    if written is not None:
        source = source.where(exists(select(literal_column("1", Integer)).select_from(written)))
    return (
        insert(outbox)
        .from_select(_EVENT_COLUMNS, source)
        .returning(outbox.c.id)
        .cte(f"queued_{number}")
    )


@functools.lru_cache(maxsize=1024)
def _sql(shape: _Shape) -> Compiled:
    """The driver's SQL of a shape: it answers one row, the number of rows written (and
    wakes the relays if it queued events)."""
    written: CTE | None = None
    if shape.columns:
        returning = _write_statement(shape).returning(literal_column("1", Integer))
        if not shape.events:
            return Compiled(
                select(func.count().label("written")).select_from(returning.cte("written"))
            )
        written = returning.cte("written")
    queued = [_queued(number, written) for number in range(shape.events)]
    woken = select(func.pg_notify(CHANNEL, "")).select_from(queued[0]).limit(1)
    matched: Any = (
        select(func.count()).select_from(written).scalar_subquery()
        if written is not None
        else literal(1)
    )
    statement = select(matched.label("written"), woken.scalar_subquery().label("woken"))
    for cte in queued:
        statement = statement.add_cte(cte)
    return Compiled(statement)


@functools.lru_cache(maxsize=256)
def _json_columns(table: Table) -> frozenset[str]:
    """The table's JSON columns: the driver is given their text (the SQL casts it)."""
    return frozenset(c.name for c in table.columns if isinstance(c.type, JSON | JSONB))


async def run_write(
    connection: psycopg.AsyncConnection[Any],
    table: Table | None,
    *,
    mode: Mode = "insert",
    values: Mapping[str, Any] | None = None,
    key: Mapping[str, Any] | None = None,
    read_at: int | None = None,
    events: Sequence[IntegrationEvent] = (),
) -> int:
    """Write ``values`` into ``table`` (an insert; one that skips a row whose key exists; or
    an update of the row ``key`` selects, if it still holds version ``read_at``) and
    ``events`` into the outbox, the events only if a row was written, in one statement.
    Return the rows written (with no table: 1, and only the events are written)."""
    if table is None and not events:
        return 1
    columns = tuple(sorted(values or ()))
    keys = tuple(sorted(key or ()))
    shape = _Shape(outbox if table is None else table, mode, columns, keys, len(events))
    params: dict[str, Any] = {}
    if table is not None:
        json_columns = _json_columns(table)
        params |= {
            f"v_{c}": msgspec.json.encode(value).decode() if c in json_columns else value
            for c, value in (values or {}).items()
        }
        params |= {f"k_{k}": value for k, value in (key or {}).items()}
        if read_at is not None:
            params["read_at"] = read_at
    for number, event in enumerate(events):
        params |= _event_params(number, event)
    found = await _sql(shape).first(connection, **params)
    return 1 if table is None else int(found["written"] if found is not None else 0)
