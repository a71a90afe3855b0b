"""Alembic environment of the ``messaging`` schema."""

from shop_kernel.migrations import run_migrations
from shop_kernel.messaging.tables import metadata

run_migrations(metadata)
