"""A small context used only by the backbone's tests: one event, a handler and a projector."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import text

from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.messaging.projection import apply_if_newer
from shop_kernel.messaging.subscriptions import project, subscribe
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import UnitOfWork
from shop_kernel.views import ReadView
from shop_platform.contexts import CONTEXTS
from shop_platform.resources import Resources

EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS public.backbone_effects "
    "(subscriber text NOT NULL, event_id uuid NOT NULL, shelf text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS public.backbone_shelf_state "
    "(shelf text PRIMARY KEY, quantity int NOT NULL, version int NOT NULL)",
)


class ShelfStocked(IntegrationEvent, frozen=True, tag="test.ShelfStocked.v1"):
    shelf: str
    quantity: int
    sleep: float = 0.0


RECORD_EFFECT = text(
    "INSERT INTO public.backbone_effects (subscriber, event_id, shelf) "
    "VALUES ('RecordEffect', :event_id, :shelf)"
)
# The write store's current state of the shelf: what a rebuild reads.
RECORD_STATE = text(
    "INSERT INTO public.backbone_shelf_state VALUES (:shelf, :quantity, :version) "
    "ON CONFLICT (shelf) DO UPDATE SET quantity = excluded.quantity, "
    "version = excluded.version WHERE backbone_shelf_state.version < excluded.version"
)


class RecordEffect:
    """Writes one row per handling, so a double effect shows as two rows."""

    jammed: ClassVar[set[str]] = set()

    async def __call__(self, event: ShelfStocked, uow: UnitOfWork) -> None:
        if event.shelf in self.jammed:
            raise RuntimeError(f"shelf {event.shelf} is jammed")
        await uow.connection.execute(
            RECORD_EFFECT, {"event_id": event.event_id, "shelf": event.shelf}
        )
        await uow.connection.execute(
            RECORD_STATE,
            {"shelf": event.shelf, "quantity": event.quantity, "version": event.aggregate_version},
        )
        if event.sleep:
            await asyncio.sleep(event.sleep)


class ShelfView:
    def __init__(self, resources: Resources, settings: Settings) -> None:
        self.collection: Any = resources.mongo[settings.mongodb_database]["backbone_shelves"]

    async def __call__(self, event: ShelfStocked) -> None:
        await apply_if_newer(
            self.collection,
            event.aggregate_id,
            event.aggregate_version,
            {"quantity": event.quantity, "shelf": event.shelf, "projected_at": datetime.now(UTC)},
        )


class ShelfStates:
    """The shelves as the write store knows them, shaped like ShelfView's documents."""

    def __init__(self, resources: Resources) -> None:
        self.engine = resources.engine

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            result = await conn.execute(text("SELECT count(*) FROM public.backbone_shelf_state"))
            return int(result.scalar_one())

    async def documents(self) -> AsyncIterator[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.stream(
                text("SELECT shelf, quantity, version FROM public.backbone_shelf_state")
            )
            async for shelf, quantity, version in rows:
                yield {"_id": shelf, "shelf": shelf, "quantity": quantity, "version": version}


def shelf_module(name: str, *, with_view: bool = True) -> ContextModule:
    users = next(context for context in CONTEXTS if context.name == "users")
    handler = subscribe(ShelfStocked, RecordEffect)
    projector = project(ShelfStocked, ShelfView)
    return ContextModule(
        name=name,
        migrations=MigrationTarget(
            name, users.migrations.metadata, users.migrations.script_location
        ),
        events=[ShelfStocked],
        subscriptions=[handler, projector] if with_view else [handler],
        views=[ReadView("backbone_shelves", "backbone_shelves", ShelfStates)],
    )


def setup() -> None:
    """Entry point for a worker subprocess: ``dramatiq backbone_support:setup``."""
    import os  # noqa: PLC0415

    import dramatiq  # noqa: PLC0415

    from shop_kernel.log import configure_logging  # noqa: PLC0415
    from shop_platform.worker import build_broker  # noqa: PLC0415

    settings = Settings.from_env()
    configure_logging(settings, process="worker")
    with_view = os.environ.get("BACKBONE_TEST_VIEW", "1") == "1"
    module = shelf_module(os.environ["BACKBONE_TEST_CONTEXT"], with_view=with_view)
    metrics = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    dramatiq.set_broker(build_broker(settings, [module], metrics=metrics))
