"""The PostgreSQL write store: one async engine per process, sessions made from it."""

from __future__ import annotations

from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shop_kernel.settings import Settings, SettingsError, env_name


def database_url(settings: Settings) -> str:
    """The configured URL in the form SQLAlchemy's psycopg 3 dialect expects."""
    return normalise_database_url(settings.require("database_url"))


def normalise_database_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    raise SettingsError(f"{env_name('database_url')}: not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    """The same database as a plain ``postgresql://`` URL, for psycopg and libpq directly."""
    return "postgresql://" + normalise_database_url(url).removeprefix("postgresql+psycopg://")


def create_engine(settings: Settings, *, application_name: str = "shop") -> AsyncEngine:
    url = make_url(database_url(settings))
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"application_name": application_name},
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
