"""The container as a context sees it: typed registration in its module, typed lookups in its
controllers (the container is punq's, built by the platform when the stores open)."""

from __future__ import annotations

from typing import Any, TypeVar, cast

import punq
from litestar.datastructures import State
from litestar.di import Provide

from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import Transactions

T = TypeVar("T")


def resolved(container: punq.Container, kind: type[T]) -> T:
    """``kind`` from ``container``, typed (punq's own lookup is untyped)."""
    found: T = cast("Any", container).resolve(kind)
    return found


def instantiated(container: punq.Container, kind: type[T]) -> T:
    """A new ``kind`` with its constructor's arguments from ``container``, typed."""
    made: T = cast("Any", container).instantiate(kind)
    return made


class Wiring:
    """What a context's ``register`` is given: the settings, the parts the platform and the
    contexts it needs registered before it, and the place for its own."""

    def __init__(self, container: punq.Container, settings: Settings) -> None:
        self._container = container
        self.settings = settings

    def get(self, kind: type[T]) -> T:
        return resolved(self._container, kind)

    def provide(self, kind: type[T], instance: T) -> None:
        self._container.register(kind, instance=instance)

    @property
    def transactions(self) -> Transactions:
        return self.get(Transactions)


def provide(kind: type[T]) -> Provide:
    """A Litestar dependency that resolves ``kind`` from ``app.state.container`` per request."""

    def resolve(state: State) -> T:
        return resolved(cast("punq.Container", state.container), kind)

    resolve.__name__ = f"provide_{kind.__name__}"
    return Provide(cast("Any", resolve), sync_to_thread=False)
