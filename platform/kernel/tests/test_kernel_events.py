"""Integration events: versioned tags, and a registry that refuses what it cannot read."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import msgspec
import pytest

from shop_kernel.messaging.events import (
    EventDecodeError,
    EventRegistry,
    IntegrationEvent,
    LegacyEvent,
    encode_event,
    event_tag,
)


class ParcelShipped(IntegrationEvent, frozen=True, tag="test.ParcelShipped.v1"):
    parcel: str
    weight_grams: int


class ParcelShippedV2(IntegrationEvent, frozen=True, tag="test.ParcelShipped.v2"):
    parcel: str
    weight_grams: int
    carrier: str


class Untagged(IntegrationEvent, frozen=True):
    parcel: str


def shipped() -> ParcelShipped:
    return ParcelShipped(aggregate_id="p-1", aggregate_version=3, parcel="p-1", weight_grams=900)


def test_an_event_round_trips_through_its_tag() -> None:
    registry = EventRegistry([ParcelShipped, ParcelShippedV2])
    event = shipped()
    payload = encode_event(event)
    assert msgspec.json.decode(payload)["type"] == "test.ParcelShipped.v1"
    assert registry.decode(payload) == event
    assert isinstance(event.event_id, uuid.UUID)


def test_each_version_of_an_event_decodes_to_its_own_type() -> None:
    registry = EventRegistry([ParcelShipped, ParcelShippedV2])
    v2 = ParcelShippedV2(
        aggregate_id="p-1", aggregate_version=4, parcel="p-1", weight_grams=900, carrier="post"
    )
    assert type(registry.decode(encode_event(v2))) is ParcelShippedV2


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"type": "test.Unheard.v1"}', "unknown event type 'test.Unheard.v1'"),
        (b"not json", "not an event envelope"),
        (b'{"type": "test.ParcelShipped.v1", "parcel": "p"}', "test.ParcelShipped.v1:"),
        (b'{"parcel": "p"}', "not an event envelope"),
    ],
    ids=["unknown-tag", "garbage", "missing-fields", "no-tag"],
)
def test_what_cannot_be_read_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        EventRegistry([ParcelShipped]).decode(payload)


def test_an_event_type_without_an_explicit_versioned_tag_is_refused() -> None:
    with pytest.raises(TypeError, match="needs a tag"):
        event_tag(Untagged)
    with pytest.raises(TypeError, match="needs a tag"):
        EventRegistry([Untagged])


def test_two_types_may_not_share_a_tag() -> None:
    class Impostor(IntegrationEvent, frozen=True, tag="test.ParcelShipped.v1"):
        parcel: str

    with pytest.raises(ValueError, match="share the tag"):
        EventRegistry([ParcelShipped, Impostor])


class Parcel(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    weight_grams: int


class ParcelSent(IntegrationEvent, frozen=True, kw_only=True, tag="test.ParcelSent.v2"):
    parcel: Parcel
    carrier: str


class ParcelSentV1(LegacyEvent, frozen=True, kw_only=True, tag="test.ParcelSent.v1"):
    """The earlier shape: the parcel's fields spread over the event."""

    current: ClassVar[type[IntegrationEvent]] = ParcelSent
    parcel_id: str
    weight_grams: int
    carrier: str

    def carried(self) -> dict[str, Any]:
        return {"parcel": Parcel(id=self.parcel_id, weight_grams=self.weight_grams)}


def test_an_earlier_shape_is_read_as_the_current_one() -> None:
    registry = EventRegistry([ParcelSent, ParcelSentV1])
    old = ParcelSentV1(
        aggregate_id="p-1", aggregate_version=2, parcel_id="p-1", weight_grams=900,
        carrier="post",
    )  # fmt: skip
    read = registry.decode(encode_event(old))
    assert read == ParcelSent(
        aggregate_id="p-1", aggregate_version=2, event_id=old.event_id,
        occurred_at=old.occurred_at, parcel=Parcel(id="p-1", weight_grams=900), carrier="post",
    )  # fmt: skip
    assert registry.legacy_tags(ParcelSent) == ["test.ParcelSent.v1"]
    assert registry.legacy_tags(ParcelShipped) == []
