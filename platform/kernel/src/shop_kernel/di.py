"""Controllers' dependencies, resolved from the container the app builds when its stores open."""

from __future__ import annotations

from typing import Any, TypeVar, cast

import punq
from litestar.datastructures import State
from litestar.di import Provide

T = TypeVar("T")


def provide(kind: type[T]) -> Provide:
    """A Litestar dependency that resolves ``kind`` from ``app.state.container`` per request."""

    def resolve(state: State) -> T:
        container = cast("punq.Container", state.container)
        resolved: T = container.resolve(kind)  # pyright: ignore[reportUnknownMemberType]
        return resolved

    resolve.__name__ = f"provide_{kind.__name__}"
    return Provide(cast("Any", resolve), sync_to_thread=False)
