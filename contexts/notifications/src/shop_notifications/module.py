"""Wiring of the notifications context: what it gives the composition root."""

from __future__ import annotations

from pathlib import Path

from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_notifications.adapters.sql import metadata

module = ContextModule(
    name="notifications",
    migrations=MigrationTarget(
        name="notifications",
        metadata=metadata,
        script_location=Path(__file__).parent / "migrations",
    ),
)
