"""Alembic environment of the ``messaging`` schema."""

from shop_kernel.messaging.tables import metadata
from shop_kernel.migrations import run_migrations

run_migrations(metadata)
