"""Migrations both ways on a database of their own (the running services keep theirs)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from alembic import command

from services.runtime.db import asyncpg_dsn
from services.runtime.migrations import alembic_config, upgrade_all
from services.runtime.settings import Settings

BEFORE_COMPRESSED_OUTBOX = {"order_state": "0006", "invoicing": "0007", "shipping": "0004"}


@pytest.fixture
async def own_database(settings: Settings) -> Settings:
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        await server.execute(f"CREATE DATABASE {name}")
    finally:
        await server.close()
    url = settings.database_url.rsplit("/", 1)[0] + f"/{name}"
    return settings.model_copy(update={"database_url": url})


@pytest.mark.parametrize("service", sorted(BEFORE_COMPRESSED_OUTBOX))
async def test_going_back_before_compressed_outbox_values_keeps_waiting_events_readable(own_database, service):
    await upgrade_all(own_database)
    event = b'{"lines": [' + b", ".join(b'{"sku": "SKU-%d", "name": "Organic T-shirt"}' % n for n in range(80)) + b"]}"
    conn = await asyncpg.connect(asyncpg_dsn(own_database.database_url_for(service)))
    try:
        from services.runtime.outbox_codec import pack

        packed, codec = pack(event)
        assert codec == "lz4" and len(packed) < len(event)
        await conn.execute(
            f"INSERT INTO {service}.outbox (topic, key, value, value_codec) VALUES ('t', 'k', $1, $2)", packed, codec
        )
        config = alembic_config(service, own_database.database_url_for(service))
        await asyncio.to_thread(command.downgrade, config, BEFORE_COMPRESSED_OUTBOX[service])
        assert await conn.fetchval(f"SELECT value FROM {service}.outbox") == event
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'outbox'",
            service,
        )
        assert "value_codec" not in {row["column_name"] for row in columns}

        await asyncio.to_thread(command.upgrade, config, "head")
        assert await conn.fetchval(f"SELECT value_codec FROM {service}.outbox") is None  # kept as is
    finally:
        await conn.close()
