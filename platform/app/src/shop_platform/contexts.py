"""The bounded contexts this service is made of, in the order their schemas are migrated."""

from __future__ import annotations

from shop_catalog.module import module as catalog
from shop_kernel.messaging.tables import MIGRATIONS as MESSAGING_MIGRATIONS
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_notifications.module import module as notifications
from shop_orders.module import module as orders
from shop_users.module import module as users

CONTEXTS: tuple[ContextModule, ...] = (users, catalog, orders, notifications)


def migration_targets() -> list[MigrationTarget]:
    """The kernel's own schema first, then every context's."""
    return [MESSAGING_MIGRATIONS, *(context.migrations for context in CONTEXTS)]
