"""Alembic environment of the ``users`` schema."""

from shop_kernel.migrations import run_migrations
from shop_users.adapters.sql import metadata

run_migrations(metadata)
