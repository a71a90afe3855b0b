"""SQLAlchemy Core tables of the ``messaging`` schema."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData

from shop_kernel.migrations import MigrationTarget

metadata = MetaData(schema="messaging")

MIGRATIONS = MigrationTarget(
    name="messaging", metadata=metadata, script_location=Path(__file__).parent / "migrations"
)
