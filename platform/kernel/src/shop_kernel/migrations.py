"""Alembic, one environment per schema: each context owns its schema and its version table.

A context's ``migrations/env.py`` is one call to :func:`run_migrations`; the platform runs
the environments in order over one connection held under an advisory lock, so two migrate
jobs started at once never race.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, MetaData, NullPool, create_engine, text

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: importing it logs its plugin set-up, and the API and
# worker processes, which only describe their migrations, should not pay for it.

_ADVISORY_LOCK_KEY = 0x5_40_9_00_01  # "shop migrations"


@dataclass(frozen=True)
class MigrationTarget:
    """A schema, the tables that should be in it, and the Alembic scripts that put them there."""

    name: str
    metadata: MetaData
    script_location: Path

    @property
    def schema(self) -> str:
        if self.metadata.schema is None:
            raise ValueError(f"{self.name}: its MetaData must name its schema")
        return self.metadata.schema

    def config(self, connection: Connection | None = None, url: str | None = None) -> Config:
        from alembic.config import Config  # noqa: PLC0415

        cfg = Config()
        cfg.set_main_option("script_location", str(self.script_location))
        cfg.set_main_option("version_table_schema", self.schema)
        if url is not None:
            cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        cfg.attributes["connection"] = connection
        cfg.attributes["metadata"] = self.metadata
        return cfg

    def head(self) -> str | None:
        from alembic.script import ScriptDirectory  # noqa: PLC0415

        return ScriptDirectory(str(self.script_location)).get_current_head()

    def current(self, connection: Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

        context = MigrationContext.configure(connection, opts={"version_table_schema": self.schema})
        return context.get_current_revision()


def run_migrations(metadata: MetaData) -> None:
    """The whole body of a context's ``env.py``: migrate ``metadata.schema`` only."""
    from alembic import context  # noqa: PLC0415 - only valid while Alembic runs env.py

    # A MigrationTarget passes its own MetaData; env.py's import serves the plain alembic CLI.
    given: MetaData | None = context.config.attributes.get("metadata")
    metadata = given if given is not None else metadata
    schema = metadata.schema
    if schema is None:
        raise ValueError("a context's MetaData must name its schema")

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        return name == schema if type_ == "schema" else True

    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": include_name,
        "compare_type": True,
        "compare_server_default": True,
    }

    def migrate(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        migrate(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise ValueError("no connection and no sqlalchemy.url given to Alembic")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            migrate(conn)
    finally:
        engine.dispose()


def upgrade(url: str, targets: Sequence[MigrationTarget]) -> list[tuple[str, str | None]]:
    """Bring every target to its head, in order; return each target's revision afterwards."""
    from alembic import command  # noqa: PLC0415

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
            conn.commit()
            try:
                reached: list[tuple[str, str | None]] = []
                for target in targets:
                    with conn.begin():
                        command.upgrade(target.config(conn), "head")
                    reached.append((target.name, target.current(conn)))
                    conn.commit()
                return reached
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


def check(url: str, target: MigrationTarget) -> None:
    """Raise ``alembic.util.AutogenerateDiffsDetected`` if the tables drift from the scripts."""
    from alembic import command  # noqa: PLC0415

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            command.check(target.config(conn))
    finally:
        engine.dispose()


def revision(url: str, target: MigrationTarget, message: str, *, autogenerate: bool) -> None:
    from alembic import command  # noqa: PLC0415

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            command.revision(target.config(conn), message=message, autogenerate=autogenerate)
            conn.commit()
    finally:
        engine.dispose()
