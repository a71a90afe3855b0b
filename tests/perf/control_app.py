"""The harness's control: the service's hot write routes done with nothing in the way.

The same framework (Litestar under uvicorn, one process) and the same statements, through
psycopg directly: no settings, container, auth, domain model, unit of work or event
translation. Each route runs the statements the service needs for its effect, in one
transaction, each prepared by psycopg, and answers the order as JSON:

  POST /control/orders              (Idempotency-Key) take the key's lock, look for a kept
                                    answer, read the items' prices, insert the order with its
                                    event and the relays' wake-up, keep the answer
  POST /control/orders/{id}/items   read the price, lock the order, update it at its version
                                    with its event and the wake-up
  POST /control/orders/{id}/confirm lock the order, update it at its version with its event

It works on copies of the service's tables in a schema of its own (``perf_control``), so the
service's relay never sees its rows. Run by the harness:

  python tests/perf/control_app.py --database-url URL --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
import uvicorn
from litestar import Litestar, Request, Response, post
from litestar.datastructures import State
from psycopg.rows import dict_row

SCHEMA = "perf_control"
POOL_SIZE = 10

# The copies of the service's tables the control writes into (indexes and constraints too).
SETUP = [
    f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE",
    f"CREATE SCHEMA {SCHEMA}",
    f"CREATE TABLE {SCHEMA}.products (LIKE catalog.products INCLUDING ALL)",
    f"INSERT INTO {SCHEMA}.products SELECT * FROM catalog.products",
    f"CREATE TABLE {SCHEMA}.orders (LIKE orders.orders INCLUDING ALL)",
    f"CREATE TABLE {SCHEMA}.outbox (LIKE messaging.outbox INCLUDING ALL)",
    f"CREATE TABLE {SCHEMA}.idempotency_keys (LIKE messaging.idempotency_keys INCLUDING ALL)",
]

FACTS = f"SELECT sku, name, price_amount, currency, is_active FROM {SCHEMA}.products WHERE sku = ANY(%(skus)s)"  # noqa: E501
LOCK = f"SELECT * FROM {SCHEMA}.orders WHERE id = %(id)s FOR UPDATE"
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(%(lock)s) AS locked"
KEPT = (
    f"SELECT * FROM {SCHEMA}.idempotency_keys WHERE caller = %(caller)s "
    "AND key_digest = %(digest)s AND expires_at > now()"
)
KEEP = (
    f"INSERT INTO {SCHEMA}.idempotency_keys (caller, key_digest, fingerprint, status, headers, "
    "body, expires_at) VALUES (%(caller)s, %(digest)s, %(fingerprint)s, %(status)s, "
    "%(headers)s::jsonb, %(body)s, now() + interval '24 hours')"
)
_QUEUED = (
    f"queued AS (INSERT INTO {SCHEMA}.outbox (event_id, event_type, aggregate_id, "
    "aggregate_version, payload, request_id) SELECT %(event_id)s, %(event_type)s, %(id)s, "
    "%(version)s, %(payload)s::jsonb, %(request_id)s WHERE EXISTS (SELECT 1 FROM written) "
    "RETURNING id) "
    "SELECT (SELECT count(*) FROM written) AS written, "
    "(SELECT pg_notify('perf_control', '') FROM queued LIMIT 1) AS woken"
)
INSERT = (
    f"WITH written AS (INSERT INTO {SCHEMA}.orders (id, customer_id, status, rejection_reason, "
    "created_at, updated_at, currency, lines, total_amount, version) VALUES (%(id)s, "
    "%(customer_id)s, 'draft', NULL, %(now)s, %(now)s, %(currency)s, %(lines)s::jsonb, "
    "%(total)s, 1) RETURNING 1), " + _QUEUED
)
UPDATE = (
    f"WITH written AS (UPDATE {SCHEMA}.orders SET customer_id = %(customer_id)s, "
    "status = %(status)s, rejection_reason = NULL, created_at = %(created_at)s, "
    "updated_at = %(now)s, currency = %(currency)s, lines = %(lines)s::jsonb, "
    "total_amount = %(total)s, version = %(version)s "
    "WHERE id = %(id)s AND version = %(read_at)s RETURNING 1), " + _QUEUED
)


class Item(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    quantity: int


class NewOrder(msgspec.Struct, forbid_unknown_fields=True):
    items: list[Item] = msgspec.field(default_factory=list[Item])


class Pool:
    """A fixed set of connections, handed out one request at a time."""

    def __init__(self, connections: list[psycopg.AsyncConnection[Any]]) -> None:
        self._free: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        for connection in connections:
            self._free.put_nowait(connection)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncCursor[dict[str, Any]]]:
        connection = await self._free.get()
        try:
            async with connection.transaction(), connection.cursor(row_factory=dict_row) as cur:
                yield cur
        finally:
            self._free.put_nowait(connection)


def _pool(state: State) -> Pool:
    pool: Pool = state.pool
    return pool


async def _facts(cur: psycopg.AsyncCursor[dict[str, Any]], skus: list[str]) -> dict[str, Any]:
    await cur.execute(FACTS, {"skus": skus})
    return {row["sku"]: row for row in await cur.fetchall()}


def _order_json(order: dict[str, Any]) -> dict[str, Any]:
    currency = order["currency"]
    lines = [
        {"sku": line["sku"], "name": line["name"],
         "unit_price": {"amount": line["unit_price"], "currency": currency},
         "quantity": line["quantity"],
         "line_total": {"amount": line["unit_price"] * line["quantity"], "currency": currency}}
        for line in order["lines"]
    ]  # fmt: skip
    return {
        "id": str(order["id"]), "customer_id": str(order["customer_id"]),
        "status": order["status"], "lines": lines,
        "total": {"amount": order["total_amount"], "currency": currency},
        "rejection_reason": None, "created_at": order["created_at"],
        "updated_at": order["updated_at"], "version": order["version"],
    }  # fmt: skip


def _event(order: dict[str, Any], event_type: str) -> dict[str, Any]:
    body = _order_json(order)
    event_id = uuid.uuid4()
    payload = {
        "type": event_type, "event_id": str(event_id), "occurred_at": order["updated_at"],
        "aggregate_id": body["id"], "aggregate_version": order["version"],
        "order": {k: v for k, v in body.items() if k != "version"},
    }  # fmt: skip
    return {
        "event_id": event_id,
        "event_type": event_type,
        "version": order["version"],
        "payload": msgspec.json.encode(payload).decode(),
        "request_id": uuid.uuid4().hex,
    }


def _add(order: dict[str, Any], fact: dict[str, Any] | None, item: Item) -> None:
    if fact is None or not fact["is_active"] or not 1 <= item.quantity <= 1000:
        raise ValueError(item.sku)
    for line in order["lines"]:
        if line["sku"] == item.sku:
            line["quantity"] += item.quantity
            break
    else:
        line = {"sku": item.sku, "name": fact["name"], "unit_price": fact["price_amount"]}
        order["lines"].append({**line, "quantity": item.quantity})
    order["total_amount"] = sum(line["unit_price"] * line["quantity"] for line in order["lines"])


def _answer(order: dict[str, Any], status: int) -> Response[bytes]:
    body = msgspec.json.encode(_order_json(order))
    return Response(body, status_code=status, media_type="application/json",
                    headers={"ETag": f'"{order["version"]}"'})  # fmt: skip


async def _update(
    cur: psycopg.AsyncCursor[dict[str, Any]], order: dict[str, Any], kind: str
) -> bool:
    read_at = order["version"]
    order["version"] = read_at + 1
    order["updated_at"] = datetime.now(UTC)
    event = _event(order, kind)
    await cur.execute(UPDATE, {
        **event, "id": order["id"], "customer_id": order["customer_id"],
        "status": order["status"], "created_at": order["created_at"], "now": order["updated_at"],
        "currency": order["currency"], "lines": msgspec.json.encode(order["lines"]).decode(),
        "total": order["total_amount"], "read_at": read_at,
    })  # fmt: skip
    row = await cur.fetchone()
    return row is not None and row["written"] == 1


@post("/control/orders", status_code=201)
async def create(request: Request[Any, Any, State], state: State) -> Response[bytes]:
    key = request.headers.get("idempotency-key", "")
    customer = uuid.UUID(request.headers["x-customer-id"])
    body = await request.body()
    data = msgspec.json.decode(body, type=NewOrder) if body else NewOrder()
    caller = f"user-{customer}"
    digest = hashlib.sha256(f"/control/orders\n{key}".encode()).hexdigest()
    lock = int.from_bytes(hashlib.sha256(f"{caller}\n{digest}".encode()).digest()[:8], signed=True)
    async with _pool(state).transaction() as cur:
        await cur.execute(TRY_LOCK, {"lock": lock})
        locked = await cur.fetchone()
        await cur.execute(KEPT, {"caller": caller, "digest": digest})
        if not (locked and locked["locked"]) or await cur.fetchone() is not None:
            return Response(b"{}", status_code=409, media_type="application/json")
        facts = await _facts(cur, [item.sku for item in data.items])
        now = datetime.now(UTC)
        order: dict[str, Any] = {
            "id": uuid.uuid4(), "customer_id": customer, "status": "draft", "lines": [],
            "total_amount": 0, "currency": "EUR", "created_at": now, "updated_at": now,
            "version": 1,
        }  # fmt: skip
        for item in data.items:
            _add(order, facts.get(item.sku), item)
        event = _event(order, "orders.OrderStarted.v2")
        await cur.execute(INSERT, {
            **event, "id": order["id"], "customer_id": customer, "now": now, "currency": "EUR",
            "lines": msgspec.json.encode(order["lines"]).decode(), "total": order["total_amount"],
        })  # fmt: skip
        answer = _answer(order, 201)
        await cur.execute(KEEP, {
            "caller": caller, "digest": digest, "fingerprint": hashlib.sha256(body).hexdigest(),
            "status": 201, "headers": '[["content-type", "application/json"]]',
            "body": answer.content,
        })  # fmt: skip
    return answer


async def _change(
    state: State, request: Request[Any, Any, State], order_id: str, change: Any
) -> Response[bytes]:
    customer = uuid.UUID(request.headers["x-customer-id"])
    async with _pool(state).transaction() as cur:
        order = await change(cur, customer, uuid.UUID(order_id))
    return _answer(order, 200)


async def _locked(
    cur: psycopg.AsyncCursor[dict[str, Any]], customer: uuid.UUID, order_id: uuid.UUID
) -> dict[str, Any]:
    await cur.execute(LOCK, {"id": order_id})
    order = await cur.fetchone()
    if order is None or order["customer_id"] != customer:
        raise LookupError(order_id)
    return order


@post("/control/orders/{order_id:str}/items", status_code=200)
async def add_item(
    request: Request[Any, Any, State], state: State, order_id: str
) -> Response[bytes]:
    item = msgspec.json.decode(await request.body(), type=Item)

    async def change(cur: Any, customer: uuid.UUID, wanted: uuid.UUID) -> dict[str, Any]:
        facts = await _facts(cur, [item.sku])
        order = await _locked(cur, customer, wanted)
        if order["status"] != "draft":
            raise ValueError(order["status"])
        _add(order, facts.get(item.sku), item)
        if not await _update(cur, order, "orders.OrderLinesChanged.v2"):
            raise RuntimeError("concurrent change")
        return order

    return await _change(state, request, order_id, change)


@post("/control/orders/{order_id:str}/confirm", status_code=200)
async def confirm(
    request: Request[Any, Any, State], state: State, order_id: str
) -> Response[bytes]:
    async def change(cur: Any, customer: uuid.UUID, wanted: uuid.UUID) -> dict[str, Any]:
        order = await _locked(cur, customer, wanted)
        if order["status"] != "draft" or not order["lines"]:
            raise ValueError(order["status"])
        order["status"] = "pending"
        if not await _update(cur, order, "orders.OrderPlaced.v3"):
            raise RuntimeError("concurrent change")
        return order

    return await _change(state, request, order_id, change)


def create_app(database_url: str) -> Litestar:
    @asynccontextmanager
    async def connections(app: Litestar) -> AsyncIterator[None]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as setup:
            for statement in SETUP:
                await setup.execute(statement)  # pyright: ignore[reportArgumentType]
        opened = [await psycopg.AsyncConnection.connect(database_url) for _ in range(POOL_SIZE)]
        app.state.pool = Pool(opened)
        try:
            yield
        finally:
            for connection in opened:
                await connection.close()

    return Litestar(
        route_handlers=[create, add_item, confirm], lifespan=[connections], logging_config=None
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(
        create_app(args.database_url), host="127.0.0.1", port=args.port, server_header=False,
        log_config=None, log_level="warning",
    )  # fmt: skip
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
