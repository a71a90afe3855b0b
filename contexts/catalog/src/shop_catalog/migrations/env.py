"""Alembic environment of the ``catalog`` schema."""

from shop_kernel.migrations import run_migrations
from shop_catalog.adapters.sql import metadata

run_migrations(metadata)
