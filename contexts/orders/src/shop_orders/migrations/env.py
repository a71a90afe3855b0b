"""Alembic environment of the ``orders`` schema."""

from shop_kernel.migrations import run_migrations
from shop_orders.adapters.sql import metadata

run_migrations(metadata)
