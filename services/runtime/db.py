"""Async engines and the per-service schema."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, literal, text
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


_BEGIN = text("SELECT 1")


async def driver_connection(conn: AsyncConnection) -> Any:
    """The asyncpg connection under SQLAlchemy's (same transaction), for COPY and for reads or writes of many
    rows without SQLAlchemy's per-row and per-parameter work.

    SQLAlchemy sends BEGIN only with its first statement: a statement sent to the driver before that would run
    outside the transaction and commit on its own (a relay's DELETE would lose its rows if Kafka then failed).
    So when SQLAlchemy's transaction is open but not yet begun on the server, a statement through SQLAlchemy
    begins it first."""
    driver = (await conn.get_raw_connection()).driver_connection
    if conn.in_transaction() and not driver.is_in_transaction():
        await conn.execute(_BEGIN)
    return driver


async def copy_rows(
    conn: AsyncConnection, schema: str, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Rows into a table with COPY (binary), in the connection's transaction: the cheapest way in, for the
    server as for us."""
    await (await driver_connection(conn)).copy_records_to_table(
        table, schema_name=schema, columns=columns, records=rows
    )
