"""Alembic migrations, one history per service, kept in the service's own schema."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.runtime.settings import SERVICES, Settings


def alembic_config(service: str, url: str) -> Config:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
    package = importlib.import_module(f"services.{service}")
    config = Config()
    config.set_main_option("script_location", str(Path(package.__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def upgrade(settings: Settings, service: str, revision: str = "head") -> None:
    """Bring one service's schema to `revision`. Blocking: call from a thread inside an event loop."""
    command.upgrade(alembic_config(service, settings.database_url_for(service)), revision)


async def upgrade_all(settings: Settings, services: tuple[str, ...] = SERVICES) -> None:
    for service in services:
        await asyncio.to_thread(upgrade, settings, service)


def run_env(schema: str, target_metadata: MetaData) -> None:
    """Body of every service's migrations/env.py (online mode, async engine)."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        lock = {"name": f"oms.migrate.{schema}"}
        try:
            async with engine.connect() as conn:
                # Several replicas may start at once: one migrates, the others wait and find nothing to do.
                await conn.execute(text("SELECT pg_advisory_lock(hashtext(:name))"), lock)
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                await conn.commit()
                await conn.run_sync(migrate)
                await conn.commit()
                await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name))"), lock)
        finally:
            await engine.dispose()

    asyncio.run(run())
