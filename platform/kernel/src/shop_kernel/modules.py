"""What a bounded context hands to the composition root: its parts, routes and schema."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import punq
from beanie import Document
from litestar.types import ControllerRouterHandler

from shop_kernel.migrations import MigrationTarget
from shop_kernel.settings import Settings


def _register_nothing(_container: punq.Container, _settings: Settings) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class ContextModule:
    """One context's wiring, declared in its ``module.py`` and read only by the platform."""

    name: str
    migrations: MigrationTarget
    register: Callable[[punq.Container, Settings], None] = _register_nothing
    route_handlers: Sequence[ControllerRouterHandler] = ()
    document_models: Sequence[type[Document]] = field(default_factory=tuple[type[Document], ...])
