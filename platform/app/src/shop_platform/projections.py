"""`shop projections rebuild`: every context's read views, rebuilt from the write stores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.views import ReadView, ViewSource, cache_generation_key, rebuild_view
from shop_platform.container import build_container
from shop_platform.resources import open_resources


class UnknownView(LookupError):
    """A view name no context declares."""


def views_of(modules: Sequence[ContextModule], wanted: str | None = None) -> list[ReadView]:
    views = [view for module in modules for view in module.views]
    if wanted is None:
        return views
    chosen = [view for view in views if view.name == wanted]
    if not chosen:
        known = ", ".join(sorted(view.name for view in views)) or "none"
        raise UnknownView(f"no read view named {wanted!r} (known: {known})")
    return chosen


# (view, total) -> a callback told how many documents are done
ProgressFactory = Callable[[ReadView, int], Callable[[int], None]]


async def rebuild_views(
    settings: Settings,
    modules: Sequence[ContextModule],
    views: Sequence[ReadView],
    progress: ProgressFactory,
) -> dict[str, int]:
    rebuilt: dict[str, int] = {}
    # A rebuild reads whole tables while it writes the views: no statement or idle
    # transaction bound of the API's may cut it off (each MongoDB operation keeps its own).
    async with open_resources(settings, role="rebuild", long_running=True) as resources:
        container = build_container(settings, resources, modules)
        database = resources.mongo[settings.mongodb_database]
        for view in views:
            source: ViewSource = _build(container, view.source)
            done = progress(view, await source.count())
            rebuilt[view.name] = await rebuild_view(
                database, view.collection, source, progress=done
            )
            # Caches of the old view must not outlive it.
            await resources.redis.incr(cache_generation_key(view.collection))
    return rebuilt


def _build(container: Any, cls: type[Any]) -> Any:
    return container.instantiate(cls)
