"""Aggregate roots carry a version for optimistic concurrency and record what happened to them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Something that happened to an aggregate, in the language of its context."""

    occurred_at: datetime = field(default_factory=_now)


@dataclass(kw_only=True, eq=False)
class AggregateRoot:
    """Base of every aggregate.

    ``version`` is the version last read from or written to the store (0 before the first
    save); the repository compares it in its UPDATE so a concurrent change is never lost.
    Events are recorded by the aggregate's own methods and collected by the unit of work.
    """

    version: int = 0
    _events: list[DomainEvent] = field(default_factory=list[DomainEvent], init=False, repr=False)

    def record(self, event: DomainEvent) -> None:
        self._events.append(event)

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        return tuple(self._events)

    def pull_events(self) -> list[DomainEvent]:
        """Hand over the recorded events exactly once."""
        events, self._events = self._events, []
        return events

    def saved_as(self, version: int) -> None:
        """Called by a repository after it stored the aggregate at ``version``."""
        if version <= self.version:
            raise ValueError(f"a saved version must grow: {self.version} -> {version}")
        self.version = version
