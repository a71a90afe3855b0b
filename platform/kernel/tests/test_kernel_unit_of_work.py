"""The unit of work commits only when told to; anything else rolls back. Entered again it
works in a savepoint; made within someone else's transaction, it commits only with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shop_devkit.plugin import MakeDatabase
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.unit_of_work import Transactions, UnitOfWork, UnitOfWorkNotStarted


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


class Owned:
    """A transaction someone else owns (as a keyed request's), begun when first asked."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self.asked = 0

    async def connection(self) -> AsyncConnection:
        self.asked += 1
        if not self._connection.in_transaction():
            await self._connection.begin()
        return self._connection


async def test_a_unit_within_another_transaction_commits_only_with_it(engine: AsyncEngine) -> None:
    async with engine.connect() as outer:
        owned = Owned(outer)
        async with UnitOfWork(engine, within=owned) as uow:
            await uow.connection.execute(text("INSERT INTO shelf VALUES ('a')"))
            await uow.commit()
        assert owned.asked == 1
        assert await names(engine) == []  # committed only to its savepoint
        await outer.rollback()
    assert await names(engine) == []
    async with engine.connect() as outer:
        async with UnitOfWork(engine, within=Owned(outer)) as uow:
            await uow.connection.execute(text("INSERT INTO shelf VALUES ('b')"))
            await uow.commit()
        assert not outer.closed  # the owner's connection stays the owner's
        await outer.commit()
    assert await names(engine) == ["b"]


async def test_a_unit_entered_again_works_in_a_savepoint_of_its_transaction(
    engine: AsyncEngine,
) -> None:
    uow = Transactions(engine).unit_of_work()
    async with uow:
        await uow.connection.execute(text("INSERT INTO shelf VALUES ('kept')"))
        with pytest.raises(Exception, match="shelf_pkey"):  # noqa: PT012
            async with uow:  # a use case given the delivery's unit of work
                await uow.connection.execute(text("INSERT INTO shelf VALUES ('x')"))
                await uow.connection.execute(text("INSERT INTO shelf VALUES ('kept')"))
        async with uow:  # the outer transaction is still usable
            await uow.connection.execute(text("INSERT INTO shelf VALUES ('y')"))
            await uow.commit()  # the savepoint's: nothing is durable yet
        assert uow.is_open
        async with uow:
            await uow.connection.execute(text("INSERT INTO shelf VALUES ('z')"))
            # left without a commit: rolled back to its savepoint
        await uow.commit()
    assert not uow.is_open
    assert await names(engine) == ["kept", "y"]


async def test_a_nested_commit_is_undone_by_the_outer_rollback(engine: AsyncEngine) -> None:
    uow = UnitOfWork(engine)
    async with uow, uow:
        await uow.connection.execute(text("INSERT INTO shelf VALUES ('a')"))
        await uow.commit()
    assert await names(engine) == []
