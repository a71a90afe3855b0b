"""One shape per state, by field name: a snapshot made from an aggregate, a table of its
columns, events that carry it, and an aggregate read back from a row."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import msgspec
import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.plugin import MakeDatabase
from shop_kernel.domain import AggregateRoot, DomainEvent, Money
from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.settings import Settings
from shop_kernel.snapshots import snapshot_of, state_events
from shop_kernel.sql import create_engine, restored_from, state_columns, state_values
from shop_kernel.wire import Amount


@dataclass(frozen=True)
class Slot:
    label: str
    price: Money

    @property
    def doubled(self) -> Money:
        return self.price.times(2)


@dataclass(kw_only=True, eq=False)
class Shelf(AggregateRoot):
    id: uuid.UUID
    state: Literal["open", "closed"] = "open"
    slots: list[Slot] = field(default_factory=list[Slot])
    note: str | None = None
    height: int = 3
    built_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def worth(self) -> int:
        return sum(slot.price.amount for slot in self.slots)


@dataclass(frozen=True, kw_only=True)
class Stocked(DomainEvent):
    label: str


class SlotShape(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    price: Amount
    doubled: Amount


class ShelfSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    state: Literal["open", "closed"]
    slots: list[SlotShape]
    note: str | None
    height: int = 3
    worth: int
    built_at: datetime


class ShelfStocked(IntegrationEvent, frozen=True, kw_only=True, tag="test.ShelfStocked.v2"):
    shelf: ShelfSnapshot
    label: str


def shelf() -> Shelf:
    made = Shelf(id=uuid.uuid4(), slots=[Slot("a", Money(250, "EUR"))], note="top")
    made.saved_as(4)
    return made


def test_a_snapshot_takes_each_field_from_the_attribute_or_property_of_its_name() -> None:
    made = shelf()
    snapshot = snapshot_of(made, ShelfSnapshot)
    assert snapshot.slots == [
        SlotShape(label="a", price=Amount(250, "EUR"), doubled=Amount(500, "EUR"))
    ]
    assert (snapshot.id, snapshot.state, snapshot.worth, snapshot.note) == (
        made.id,
        "open",
        250,
        "top",
    )


def test_events_carry_the_snapshot_the_identity_the_version_and_their_own_facts() -> None:
    made = shelf()
    translate = state_events(
        "shelf", lambda s: snapshot_of(s, ShelfSnapshot), {Stocked: ShelfStocked}
    )[Stocked]
    told = translate(made, Stocked(label="a"))
    assert isinstance(told, ShelfStocked)
    assert (told.aggregate_id, told.aggregate_version, told.label) == (str(made.id), 4, "a")
    assert told.shelf == snapshot_of(made, ShelfSnapshot)


metadata = MetaData()
shelves = Table(
    "shelves", metadata,
    *state_columns(ShelfSnapshot, key="id", apart=("slots", "worth")),
    # kept apart: the slots as they are, and the worth not at all (the domain computes it)
    Column("slots", JSONB, nullable=False),
    Column("version", Integer, nullable=False),
)  # fmt: skip


def test_a_table_of_a_state_has_a_column_a_field_typed_nullable_and_defaulted_alike() -> None:
    columns = {column.name: column for column in shelves.columns}
    assert set(columns) == {"id", "state", "note", "height", "built_at", "slots", "version"}
    assert columns["id"].primary_key
    assert columns["note"].nullable
    assert not columns["state"].nullable
    assert isinstance(columns["built_at"].type, DateTime)
    assert getattr(columns["built_at"].type, "timezone", False)
    assert columns["height"].server_default is not None  # an earlier release inserts it too
    assert columns["note"].server_default is None


@pytest.fixture
async def engine(make_database: MakeDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=make_database()))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_an_aggregate_is_written_and_read_back_by_field_name(engine: AsyncEngine) -> None:
    made = shelf()
    values = state_values(snapshot_of(made, ShelfSnapshot), shelves, apart=("slots", "worth"))
    assert set(values) == {"id", "state", "note", "height", "built_at"}
    slots = [{"label": s.label, "price": {"amount": s.price.amount, "currency": "EUR"}}
             for s in made.slots]  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(shelves.insert().values(**values, slots=slots, version=4))
        row = (await conn.execute(select(shelves))).one()
    back = restored_from(row, Shelf)
    assert (back.id, back.note, back.height, back.version) == (made.id, "top", 3, 4)
    assert back.slots == made.slots
    assert back.pending_events == ()
