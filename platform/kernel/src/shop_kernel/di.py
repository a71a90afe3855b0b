"""The container as a context sees it: typed registration in its module, typed lookups in its
controllers (the container is punq's, built by the platform when the stores open)."""

from __future__ import annotations

import weakref
from typing import Any, TypeVar, cast

import punq
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import Transactions, UnitOfWork

T = TypeVar("T")


# What each container answered, per kind: everything the composition root registers is an
# instance (``Wiring.provide``), so an answer never changes, and a request's lookups skip
# punq's resolution (a few of them per request).
_ANSWERED: weakref.WeakKeyDictionary[punq.Container, dict[type[Any], Any]] = (
    weakref.WeakKeyDictionary()
)


def resolved(container: punq.Container, kind: type[T]) -> T:
    """``kind`` from ``container``, typed (punq's own lookup is untyped)."""
    answered = _ANSWERED.get(container)
    if answered is None:
        answered = _ANSWERED[container] = {}
    found = answered.get(kind)
    if found is None:
        found = answered[kind] = cast("Any", container).resolve(kind)
    return cast("T", found)


def replace(container: punq.Container, kind: type[T], instance: T) -> None:
    """Register ``instance`` for ``kind`` in the place of what was (a test's stand-in): the
    lookups answer it from now on."""
    container.register(kind, instance=instance)
    _ANSWERED.get(container, {}).pop(kind, None)


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
    """A Litestar dependency that resolves ``kind`` from ``app.state.container`` per request.

    It is resolved after the request's unit of work (the ``uow`` dependency of every route,
    which it otherwise ignores): Litestar resolves dependencies that depend on nothing of
    each other concurrently, in a task group per request, which costs a command more than
    resolving its use case and its unit of work one after the other.
    """

    def resolve(state: State, uow: NamedDependency[UnitOfWork]) -> T:
        return resolved(cast("punq.Container", state.container), kind)

    resolve.__name__ = f"provide_{kind.__name__}"
    return Provide(cast("Any", resolve), sync_to_thread=False)
