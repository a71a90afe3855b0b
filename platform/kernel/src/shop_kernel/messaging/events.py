"""Integration events: the facts one context publishes for the others, as versioned Structs.

Each event type has a stable tag (``"orders.OrderPlaced.v1"``) under which it is stored in
the outbox and sent to subscribers; a changed shape gets a new tag, never a changed old one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec


def _now() -> datetime:
    return datetime.now(UTC)


class IntegrationEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every integration event; subclasses pass ``tag="context.Name.vN"``."""

    aggregate_id: str
    aggregate_version: int
    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    occurred_at: datetime = msgspec.field(default_factory=_now)


def event_tag(event_type: type[IntegrationEvent]) -> str:
    """The stable, versioned name the event type is stored and sent under."""
    tag = event_type.__struct_config__.tag
    if not isinstance(tag, str) or tag == event_type.__name__:
        raise TypeError(
            f"{event_type.__name__} needs a tag, like tag='context.{event_type.__name__}.v1'"
        )
    return tag


E = TypeVar("E", bound=IntegrationEvent)


class EventDecodeError(ValueError):
    """A payload that cannot become an event: unknown tag or a body that does not fit it."""


class _Envelope(msgspec.Struct):
    type: str


class EventRegistry:
    """Knows every event type by its tag and turns stored bytes back into the right Struct."""

    def __init__(self, types: Iterable[type[IntegrationEvent]] = ()) -> None:
        self._types: dict[str, type[IntegrationEvent]] = {}
        for event_type in types:
            self.add(event_type)

    def add(self, event_type: type[IntegrationEvent]) -> None:
        tag = event_tag(event_type)
        known = self._types.get(tag)
        if known is not None and known is not event_type:
            raise ValueError(f"two event types share the tag {tag!r}")
        self._types[tag] = event_type

    def __contains__(self, tag: str) -> bool:
        return tag in self._types

    def tags(self) -> list[str]:
        return sorted(self._types)

    def decode(self, payload: bytes | str) -> IntegrationEvent:
        try:
            tag = msgspec.json.decode(payload, type=_Envelope).type
        except msgspec.DecodeError as exc:
            raise EventDecodeError(f"not an event envelope: {exc}") from exc
        event_type = self._types.get(tag)
        if event_type is None:
            raise EventDecodeError(f"unknown event type {tag!r}")
        try:
            return msgspec.json.decode(payload, type=event_type)
        except msgspec.DecodeError as exc:
            raise EventDecodeError(f"{tag}: {exc}") from exc


def encode_event(event: IntegrationEvent) -> bytes:
    return msgspec.json.encode(event)
