"""Async engines and the per-service schema."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.runtime.settings import Settings


def create_engine(settings: Settings, service: str) -> AsyncEngine:
    return create_async_engine(
        settings.database_url_for(service),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        connect_args={"server_settings": {"application_name": f"oms-{service}"}},
    )


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The plain libpq-style URL asyncpg.connect() takes, from a SQLAlchemy URL."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)
