"""Wiring of the catalog context: what it gives the composition root."""

from __future__ import annotations

from pathlib import Path

from shop_catalog.adapters.sql import metadata
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule

module = ContextModule(
    name="catalog",
    migrations=MigrationTarget(
        name="catalog", metadata=metadata, script_location=Path(__file__).parent / "migrations"
    ),
)
