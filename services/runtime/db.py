"""Async engines and the per-service schema."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

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


def any_id(ids: Iterable[int]) -> ColumnElement[int]:
    """`column == any_id(ids)`: one array parameter, however many ids (an IN list is one parameter per id,
    and PostgreSQL's protocol stops at 32,767: a shipment of 100,000 items would never be recorded)."""
    return any_(literal(list(ids), ARRAY(BigInteger)))


async def driver_connection(conn: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's (same transaction), for COPY and for reads or writes of many
    rows without SQLAlchemy's per-row and per-parameter work."""
    return (await conn.get_raw_connection()).driver_connection


async def copy_rows(
    conn: AsyncConnection, schema: str, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Rows into a table with COPY (binary), in the connection's transaction: the cheapest way in, for the
    server as for us."""
    await (await driver_connection(conn)).copy_records_to_table(
        table, schema_name=schema, columns=columns, records=rows
    )
