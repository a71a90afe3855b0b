"""SQLAlchemy Core tables of the ``catalog`` schema."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData(schema="catalog")
