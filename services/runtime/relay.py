"""Moves outbox rows to Kafka: FOR UPDATE SKIP LOCKED, woken by LISTEN/NOTIFY, safe with replicas.

A transaction-scoped advisory lock lets one replica at a time publish a service's outbox, so events of
one order leave in the order they were written even when several replicas run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.db import asyncpg_dsn
from services.runtime.settings import Settings
from services.runtime.unit_of_work import outbox_channel

log = logging.getLogger(__name__)


def create_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **settings.kafka_client_options(),
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=2,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        compression_type=None,
    )


class OutboxRelay:
    def __init__(self, settings: Settings, engine: AsyncEngine, outbox: Table, service: str) -> None:
        self._settings = settings
        self._engine = engine
        self._outbox = outbox
        self._service = service
        self._wake = asyncio.Event()
        self._producer = create_producer(settings, f"oms-{service}-relay")
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        await self._start_producer(stop)
        listener = None
        try:
            listener = await self._listen()
            backoff = 0.2
            while not stop.is_set():
                try:
                    sent = await self.relay_once()
                    backoff = 0.2
                except Exception as exc:
                    log.warning("outbox relay of %s failed, retrying in %.1fs: %s", self._service, backoff, exc)
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, self._settings.retry_backoff_max_seconds)
                    if listener is None or listener.is_closed():
                        listener = await self._listen()
                    continue
                if sent < self._settings.relay_batch_size:
                    self._wake.clear()
                    waiter = asyncio.ensure_future(self._wake.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({waiter, stopper}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    stopper.cancel()
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()
            # Whatever was read and sent is deleted in its transaction; what was not stays for next time.
            await self._producer.stop()

    async def _start_producer(self, stop: asyncio.Event) -> None:
        backoff = 0.2
        while True:
            try:
                await self._producer.start()
                return
            except Exception as exc:
                if stop.is_set():
                    raise
                log.warning("relay of %s cannot reach Kafka yet (%s); retrying", self._service, exc)
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await asyncpg.connect(asyncpg_dsn(str(self._engine.url.render_as_string(False))))
            await conn.add_listener(outbox_channel(self._outbox), lambda *_: self._wake.set())
            return conn
        except Exception as exc:
            log.warning("relay of %s cannot LISTEN (%s); polling instead", self._service, exc)
            return None

    async def relay_once(self) -> int:
        """Publish one batch of outbox rows; returns how many were published."""
        outbox = self._outbox
        async with self._engine.begin() as conn:
            locked = await conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"), {"name": f"oms.relay.{outbox.schema}"}
            )
            if not locked:
                return 0
            rows = (
                await conn.execute(
                    select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value, outbox.c.headers)
                    .order_by(outbox.c.id)
                    .limit(self._settings.relay_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            futures: list[Any] = []
            for row in rows:
                headers = [(name, value.encode()) for name, value in row.headers]
                futures.append(await self._producer.send(row.topic, value=row.value, key=row.key, headers=headers))
            await asyncio.gather(*futures)
            await conn.execute(delete(outbox).where(outbox.c.id.in_([row.id for row in rows])))
        self.published += len(rows)
        return len(rows)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
