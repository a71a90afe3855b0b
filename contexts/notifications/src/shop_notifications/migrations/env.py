"""Alembic environment of the ``notifications`` schema."""

from shop_kernel.migrations import run_migrations
from shop_notifications.adapters.sql import metadata

run_migrations(metadata)
