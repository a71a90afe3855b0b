"""Integration events: the facts one context publishes for the others, as versioned Structs.

Each event type has a stable tag (``"orders.OrderPlaced.v1"``) under which it is stored in
the outbox and sent to subscribers; a changed shape gets a new tag, never a changed old one.
The shape it replaces stays readable as a :class:`LegacyEvent` for as long as such events
may still be in flight (a rolling deploy) or replayed (dead letters): the registry turns one
into the current shape as it decodes it, so a subscriber only ever sees the current shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import msgspec


def _now() -> datetime:
    return datetime.now(UTC)


class IntegrationEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every integration event; subclasses pass ``tag="context.Name.vN"``."""

    aggregate_id: str
    aggregate_version: int
    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    occurred_at: datetime = msgspec.field(default_factory=_now)


class LegacyEvent(IntegrationEvent, frozen=True, kw_only=True):
    """The shape of an event of an earlier release: read, never written.

    ``current`` is the event type it is now; :meth:`upcast` makes that event of it. By
    default the current event takes the legacy one's fields of the same names, and
    :meth:`carried` adds those that are not there by name (such as a snapshot)."""

    current: ClassVar[type[IntegrationEvent]]

    def carried(self) -> dict[str, Any]:
        """Fields of the current event this shape has under other names or in another form."""
        return {}

    def upcast(self) -> IntegrationEvent:
        return msgspec.convert(
            {**msgspec.structs.asdict(self), **self.carried()}, self.current, from_attributes=True
        )


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

    def legacy_tags(self, event_type: type[IntegrationEvent]) -> list[str]:
        """The tags of the earlier shapes that are read as ``event_type``."""
        return sorted(
            tag
            for tag, known in self._types.items()
            if issubclass(known, LegacyEvent) and known.current is event_type
        )

    def decode(self, payload: bytes | str) -> IntegrationEvent:
        tag = tag_of(payload)
        if tag is None:
            raise EventDecodeError("not an event envelope")
        event_type = self._types.get(tag)
        if event_type is None:
            raise EventDecodeError(f"unknown event type {tag!r}")
        try:
            event = msgspec.json.decode(payload, type=event_type)
        except msgspec.DecodeError as exc:
            raise EventDecodeError(f"{tag}: {exc}") from exc
        return event.upcast() if isinstance(event, LegacyEvent) else event


def tag_of(payload: bytes | str) -> str | None:
    """The tag a payload's envelope names, if it has one."""
    try:
        return msgspec.json.decode(payload, type=_Envelope).type
    except msgspec.DecodeError:
        return None


def encode_event(event: IntegrationEvent) -> bytes:
    return msgspec.json.encode(event)
