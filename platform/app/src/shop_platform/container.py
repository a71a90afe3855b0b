"""The punq container: the only place that knows every concrete class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import punq
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.modules import ContextModule, translate_with
from shop_kernel.mongo import ReadStore
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import UnitOfWork
from shop_platform.contexts import CONTEXTS
from shop_platform.resources import Resources


def build_container(
    settings: Settings, resources: Resources, modules: Sequence[ContextModule] = CONTEXTS
) -> punq.Container:
    container = punq.Container()
    translate = translate_with(modules)
    container.register(Settings, instance=settings)
    container.register(AsyncEngine, instance=resources.engine)
    container.register(Redis, instance=resources.redis)
    container.register(Resources, instance=resources)
    container.register(
        ReadStore,
        instance=ReadStore(cast("Any", resources.mongo)[settings.mongodb_database]),
    )
    container.register(
        UnitOfWork,
        factory=lambda: UnitOfWork(resources.engine, translate),
        scope=punq.Scope.transient,
    )
    for context in modules:
        context.register(container, settings)
    return container
