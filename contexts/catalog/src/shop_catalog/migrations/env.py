"""Alembic environment of the ``catalog`` schema."""

from shop_catalog.adapters.sql import metadata
from shop_kernel.migrations import run_migrations

run_migrations(metadata)
