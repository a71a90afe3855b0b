"""The domain building blocks: versioned aggregates that record events, named errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shop_kernel.domain import AggregateRoot, Conflict, DomainError, DomainEvent


@dataclass(frozen=True, kw_only=True)
class Renamed(DomainEvent):
    name: str


@dataclass(kw_only=True, eq=False)
class Shelf(AggregateRoot):
    name: str

    def rename(self, name: str) -> None:
        self.name = name
        self.record(Renamed(name=name))


def test_events_recorded_by_an_aggregate_are_handed_over_once() -> None:
    shelf = Shelf(name="a")
    shelf.rename("b")
    shelf.rename("c")
    assert [e.name for e in shelf.pending_events if isinstance(e, Renamed)] == ["b", "c"]
    assert [e.name for e in shelf.pull_events() if isinstance(e, Renamed)] == ["b", "c"]
    assert shelf.pull_events() == []


def test_a_new_aggregate_has_version_zero_and_saving_must_raise_it() -> None:
    shelf = Shelf(name="a")
    assert shelf.version == 0
    shelf.saved_as(1)
    assert shelf.version == 1
    with pytest.raises(ValueError, match="must grow"):
        shelf.saved_as(1)


def test_recorded_events_are_not_part_of_the_constructor_or_repr() -> None:
    shelf = Shelf(name="a")
    shelf.rename("b")
    assert "_events" not in repr(shelf)


def test_domain_errors_carry_their_facts_under_their_own_names() -> None:
    error = Conflict("order o-1 is not a draft", order_id="o-1")
    assert isinstance(error, DomainError)
    assert error.code == "conflict"
    assert error.details == {"order_id": "o-1"}
    assert str(error) == "order o-1 is not a draft"


def test_facts_may_not_take_the_names_of_the_error_envelope() -> None:
    with pytest.raises(TypeError, match="status"):
        Conflict("nope", status="pending")
