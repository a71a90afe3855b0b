"""Idempotency-Key: the kept answer and the request's effect commit together, or neither does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import punq
import pytest
from litestar import Litestar, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.plugin import MakeDatabase
from shop_kernel.idempotency import IdempotencyKey, idempotent, unit_of_work
from shop_kernel.messaging.tables import MIGRATIONS, idempotency_keys
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.unit_of_work import Transactions, UnitOfWork


class Shelf(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    then: str = "answer"  # "answer", "fail" (a 5xx after the commit), "refuse" (a 4xx)


@pytest.fixture
async def engine(make_database: MakeDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=make_database([MIGRATIONS])))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE shelf (name text PRIMARY KEY)"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[AsyncTestClient[Litestar]]:
    @post("/shelves", middleware=[idempotent])
    async def add_shelf(
        data: JSONBody[Shelf],
        uow: NamedDependency[UnitOfWork],
        idempotency_key: IdempotencyKey = None,
    ) -> dict[str, str]:
        async with uow:
            await uow.connection.execute(text("INSERT INTO shelf VALUES (:n)"), {"n": data.name})
            await uow.commit()
        await asyncio.sleep(0.05)  # a request that takes a moment
        if data.then == "fail":
            raise RuntimeError("the answer could not be made")
        if data.then == "refuse":
            from litestar.exceptions import ValidationException  # noqa: PLC0415

            raise ValidationException("refused after the commit")
        return {"name": data.name}

    container = punq.Container()
    container.register(Transactions, instance=Transactions(engine))
    app = Litestar([add_shelf], dependencies={"uow": unit_of_work})
    app.state.container = container
    async with AsyncTestClient(app) as client:
        yield client


async def shelves(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT name FROM shelf ORDER BY name"))).scalars())


async def kept(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(idempotency_keys.c.status))).scalars())


async def test_the_effect_and_its_answer_are_kept_together(
    client: AsyncTestClient[Litestar], engine: AsyncEngine
) -> None:
    key = {"Idempotency-Key": "k-1"}
    first = await client.post("/shelves", json={"name": "a"}, headers=key)
    again = await client.post("/shelves", json={"name": "a"}, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() == {"name": "a"}
    assert again.headers["idempotent-replayed"] == "true"
    assert await shelves(engine) == ["a"]
    assert await kept(engine) == [201]


async def test_a_server_error_after_the_commit_undoes_the_effect_and_keeps_nothing(
    client: AsyncTestClient[Litestar], engine: AsyncEngine
) -> None:
    key = {"Idempotency-Key": "k-2"}
    failed = await client.post("/shelves", json={"name": "b", "then": "fail"}, headers=key)
    assert failed.status_code == 500
    assert await shelves(engine) == []  # its unit of work had "committed", inside the request's
    assert await kept(engine) == []
    retried = await client.post("/shelves", json={"name": "b"}, headers=key)
    assert retried.status_code == 201  # a different body is fine: nothing was kept
    assert await shelves(engine) == ["b"]


async def test_a_client_error_is_kept_and_replayed(
    client: AsyncTestClient[Litestar], engine: AsyncEngine
) -> None:
    key = {"Idempotency-Key": "k-3"}
    body = {"name": "c", "then": "refuse"}
    first = await client.post("/shelves", json=body, headers=key)
    again = await client.post("/shelves", json=body, headers=key)
    assert first.status_code == again.status_code == 400
    assert again.headers["idempotent-replayed"] == "true"
    assert await kept(engine) == [400]
    assert await shelves(engine) == ["c"]  # the handler's decision: its unit committed
    other = await client.post("/shelves", json={"name": "d"}, headers=key)
    assert other.status_code == 422


async def test_many_duplicates_run_once(
    client: AsyncTestClient[Litestar], engine: AsyncEngine
) -> None:
    key = {"Idempotency-Key": "k-4"}
    answers = await asyncio.gather(
        *(client.post("/shelves", json={"name": "e"}, headers=key) for _ in range(20))
    )
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {201, 409}
    fresh = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(fresh) == 1
    assert await shelves(engine) == ["e"]


async def test_without_a_key_nothing_is_kept(
    client: AsyncTestClient[Litestar], engine: AsyncEngine
) -> None:
    assert (await client.post("/shelves", json={"name": "f"})).status_code == 201
    assert (await client.post("/shelves", json={"name": "f"})).status_code == 500  # pkey
    assert await kept(engine) == []
