"""One shape per state: an aggregate's snapshot, the Struct its context publishes.

A snapshot is made from the aggregate by field name (an attribute or a property of the
aggregate; a value object becomes its wire form, ``Money`` an ``Amount``), so that a field
added to both is carried everywhere without another line of mapping: into the events that
carry the snapshot, the read view that stores it as it is, the HTTP answers that return it,
and the rebuilds that read it. The table that holds the aggregate is the snapshot's columns
(``shop_kernel.sql.state_columns``), read back into the aggregate by name as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from shop_kernel.domain import AggregateRoot, DomainEvent
from shop_kernel.messaging.events import IntegrationEvent

T = TypeVar("T")

Translation = Callable[[Any, Any], IntegrationEvent]


def snapshot_of(aggregate: object, kind: type[T]) -> T:
    """The ``kind`` snapshot of ``aggregate``: each field from the attribute of its name."""
    return msgspec.convert(aggregate, kind, from_attributes=True)


def state_events(
    field: str,
    snapshot: Callable[[Any], msgspec.Struct],
    events: Mapping[type[DomainEvent], type[IntegrationEvent]],
    *,
    identity: str = "id",
) -> dict[type[DomainEvent], Translation]:
    """How an aggregate's domain events are told: each as its integration event, carrying
    the aggregate's snapshot in ``field`` (``snapshot(aggregate)``), its identity (the
    attribute ``identity``) and version, and the domain event's own facts by name."""

    def translation(event_type: type[IntegrationEvent]) -> Translation:
        def translate(aggregate: AggregateRoot, event: DomainEvent) -> IntegrationEvent:
            facts = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
            facts |= {
                "aggregate_id": str(getattr(aggregate, identity)),
                "aggregate_version": aggregate.version,
                field: snapshot(aggregate),
            }
            # Made, not converted: every value is the domain's own, of the event's types.
            return event_type(**facts)

        return translate

    return {domain: translation(published) for domain, published in events.items()}
