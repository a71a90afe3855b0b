"""The unit of work commits only when told to; anything else rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.plugin import MakeDatabase
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.unit_of_work import UnitOfWork, UnitOfWorkNotStarted, joined, separately


@pytest.fixture
async def engine(make_database: MakeDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=make_database()))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE shelf (name text PRIMARY KEY)"))
    yield engine
    await engine.dispose()


async def names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT name FROM shelf ORDER BY name"))).scalars())


async def test_committed_work_is_kept(engine: AsyncEngine) -> None:
    async with UnitOfWork(engine) as uow:
        await uow.connection.execute(text("INSERT INTO shelf VALUES ('a')"))
        await uow.commit()
    assert await names(engine) == ["a"]


async def test_work_not_committed_is_rolled_back(engine: AsyncEngine) -> None:
    async with UnitOfWork(engine) as uow:
        await uow.connection.execute(text("INSERT INTO shelf VALUES ('a')"))
    assert await names(engine) == []


async def test_an_exception_rolls_back_and_propagates(engine: AsyncEngine) -> None:
    async def decide_otherwise() -> None:
        async with UnitOfWork(engine) as uow:
            await uow.connection.execute(text("INSERT INTO shelf VALUES ('a')"))
            raise RuntimeError("decided otherwise")

    with pytest.raises(RuntimeError, match="decided otherwise"):
        await decide_otherwise()
    assert await names(engine) == []


async def test_explicit_rollback_discards_and_the_unit_can_be_used_again(
    engine: AsyncEngine,
) -> None:
    uow = UnitOfWork(engine)
    async with uow:
        await uow.connection.execute(text("INSERT INTO shelf VALUES ('a')"))
        await uow.rollback()
    async with uow:
        await uow.connection.execute(text("INSERT INTO shelf VALUES ('b')"))
        await uow.commit()
    assert await names(engine) == ["b"]


async def test_the_session_is_only_there_inside_the_block(
    engine: AsyncEngine,
) -> None:
    uow = UnitOfWork(engine)
    with pytest.raises(UnitOfWorkNotStarted):
        _ = uow.connection


async def test_a_joined_unit_commits_only_with_the_outer_transaction(engine: AsyncEngine) -> None:
    async with engine.connect() as outer:
        await outer.begin()
        with joined(outer):
            async with UnitOfWork(engine) as uow:
                await uow.connection.execute(text("INSERT INTO shelf VALUES ('a')"))
                await uow.commit()
        assert await names(engine) == []  # committed only to its savepoint
        await outer.rollback()
    assert await names(engine) == []
    async with engine.connect() as outer:
        await outer.begin()
        with joined(outer):
            async with UnitOfWork(engine) as uow:
                await uow.connection.execute(text("INSERT INTO shelf VALUES ('b')"))
                await uow.commit()
        await outer.commit()
    assert await names(engine) == ["b"]


async def test_a_joined_unit_that_fails_undoes_only_its_own_work(engine: AsyncEngine) -> None:
    async with engine.connect() as outer:
        await outer.begin()
        await outer.execute(text("INSERT INTO shelf VALUES ('kept')"))
        with joined(outer):
            with pytest.raises(Exception, match="shelf_pkey"):  # noqa: PT012
                async with UnitOfWork(engine) as uow:
                    await uow.connection.execute(text("INSERT INTO shelf VALUES ('x')"))
                    await uow.connection.execute(text("INSERT INTO shelf VALUES ('kept')"))
            async with UnitOfWork(engine) as uow:  # the outer transaction is still usable
                await uow.connection.execute(text("INSERT INTO shelf VALUES ('y')"))
        await outer.commit()
    assert await names(engine) == ["kept"]  # 'y' was never committed by its unit


async def test_a_separate_unit_inside_a_joined_block_commits_on_its_own(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as outer:
        await outer.begin()
        with joined(outer), separately():
            async with UnitOfWork(engine) as uow:
                await uow.connection.execute(text("INSERT INTO shelf VALUES ('sent')"))
                await uow.commit()
        await outer.rollback()
    assert await names(engine) == ["sent"]
