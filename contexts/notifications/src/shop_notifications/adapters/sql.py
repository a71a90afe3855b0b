"""SQLAlchemy Core tables of the ``notifications`` schema."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData(schema="notifications")
