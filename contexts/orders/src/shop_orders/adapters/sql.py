"""SQLAlchemy Core tables of the ``orders`` schema."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData(schema="orders")
