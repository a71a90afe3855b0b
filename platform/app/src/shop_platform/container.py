"""The punq container: the only place that knows every concrete class.

Contexts register in an order the platform works out from what each one declares it provides
to the others and needs from them (their contracts' query facades), never in the order they
happen to be installed or named: a context that needs a facade registers after its provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from graphlib import CycleError, TopologicalSorter
from typing import Any, cast

import punq
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.di import Wiring, resolved
from shop_kernel.modules import ContextModule, translate_with
from shop_kernel.mongo import ReadStore
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import Transactions
from shop_platform.contexts import CONTEXTS
from shop_platform.resources import Resources


class CompositionError(RuntimeError):
    """The installed contexts do not make a service: a facade that one of them needs and
    none provides, one provided twice, or contexts that need each other's in a cycle."""


def registration_order(modules: Sequence[ContextModule]) -> list[ContextModule]:
    """``modules``, each after the providers of what it needs (else in the order given)."""
    providers: dict[type[Any], ContextModule] = {}
    for module in modules:
        for kind in module.provides:
            if kind in providers:
                raise CompositionError(
                    f"{kind.__name__} is provided by both {providers[kind].name} and {module.name}"
                )
            providers[kind] = module
    after: dict[str, set[str]] = {}
    for module in modules:
        missing = [kind.__name__ for kind in module.needs if kind not in providers]
        if missing:
            raise CompositionError(
                f"{module.name} needs {', '.join(missing)}, which no installed context provides"
            )
        after[module.name] = {providers[kind].name for kind in module.needs} - {module.name}
    try:
        order = list(TopologicalSorter(after).static_order())
    except CycleError as cycle:
        raise CompositionError(
            f"contexts need each other's facades in a cycle: {' -> '.join(cycle.args[1])}"
        ) from None
    by_name = {module.name: module for module in modules}
    return [by_name[name] for name in order]


def _register(context: ContextModule, container: punq.Container, settings: Settings) -> None:
    context.register(Wiring(container, settings))
    for kind in context.provides:
        try:
            resolved(container, kind)
        except punq.MissingDependencyError:
            raise CompositionError(
                f"{context.name} declares that it provides {kind.__name__} but did not register it"
            ) from None


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
    container.register(Transactions, instance=Transactions(resources.engine, translate))
    for context in registration_order(modules):
        _register(context, container, settings)
    return container
