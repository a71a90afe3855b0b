"""SQLAlchemy Core tables of the ``users`` schema."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData(schema="users")
