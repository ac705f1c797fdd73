"""Moves outbox rows to Kafka: FOR UPDATE SKIP LOCKED, woken by LISTEN/NOTIFY, safe with replicas.

A transaction-scoped advisory lock lets one replica at a time publish a service's outbox, so events of
one order leave in the order they were written even when several replicas run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import struct
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from operator import itemgetter
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.db import asyncpg_dsn, driver_connection
from services.runtime.outbox_codec import BLOCK_EVENTS, EVENTS_LZ4, unpack, unpack_events
from services.runtime.settings import Settings
from services.runtime.unit_of_work import RELAY_MAX_REQUEST_BYTES, headers_of, outbox_channel

log = logging.getLogger(__name__)


def create_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **settings.kafka_client_options(),
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=2,
        max_batch_size=256 * 1024,
        max_request_size=RELAY_MAX_REQUEST_BYTES,
        compression_type=settings.kafka_batch_compression,
    )


class OutboxRelay:
    def __init__(self, settings: Settings, engine: AsyncEngine, outbox: Table, service: str) -> None:
        self._settings = settings
        self._engine = engine
        self._outbox = outbox
        self._service = service
        self._wake = asyncio.Event()
        self._producer = create_producer(settings, f"oms-{service}-relay")
        self._lock_name = f"oms.relay.{outbox.schema}"
        # The first rows in id order, as many as hold at most $1 events (the first row whatever it holds).
        self._take = f"""
            DELETE FROM {outbox.schema}.{outbox.name} WHERE id = ANY(ARRAY(
                SELECT id FROM (
                    SELECT id, event_count, sum(event_count) OVER (ORDER BY id) AS upto
                    FROM (SELECT id, event_count FROM {outbox.schema}.{outbox.name}
                          ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) AS candidates
                ) AS counted WHERE upto <= $1 OR upto = event_count))
            RETURNING id, topic, key, value, headers::text, event_id::text, value_codec"""
        self.published = 0

    async def discard(self) -> None:
        """Let go of a relay that will never run (its producer was created, not started)."""
        await self._producer.stop()

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
                # Wait for a NOTIFY unless the take may have been cut short by the batch size (more may wait).
                if sent == 0 or sent + BLOCK_EVENTS <= self._settings.relay_batch_size:
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
        """Publish one batch of outbox rows; returns how many events were published. The rows are taken
        (deleted, returned) in the transaction that publishes them: if publishing fails, the rollback keeps
        them."""
        async with self._engine.begin() as conn:
            raw = await driver_connection(conn)
            if not await raw.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", self._lock_name):
                return 0
            rows = await raw.fetch(self._take, self._settings.relay_batch_size)
            if not rows:
                return 0
            rows.sort(key=itemgetter(0))
            messages = list(_messages(rows))
            await asyncio.gather(*await self._send(messages))
        self.published += len(messages)
        return len(messages)

    async def _send(self, messages: list[_Message]) -> list[asyncio.Future[Any]]:
        """Hand the messages to the producer as one record batch per topic partition (in outbox order within
        each), partitioned by key as the Java client does; returns the delivery futures."""
        partitions: dict[str, list[int]] = {}
        by_partition: dict[tuple[str, int], list[_Message]] = defaultdict(list)
        for message in messages:
            topic = message[0]
            if topic not in partitions:
                partitions[topic] = sorted(await self._producer.partitions_for(topic))
            by_partition[(topic, partition_for(message[1], partitions[topic]))].append(message)
        futures = []
        for (topic, partition), group in by_partition.items():
            # An event's headers are the topic's, encoded once, with its own id in place.
            template = [(name, text.encode()) for name, text in headers_of(topic, "")]
            slot = next(n for n, (name, _) in enumerate(template) if name == "event_id")
            batch = []
            for _, key, value, event_id, headers in group:
                if event_id is not None:
                    encoded = template.copy()
                    encoded[slot] = ("event_id", event_id)
                else:  # a dead letter: its own headers
                    encoded = [(name, text.encode()) for name, text in json.loads(headers)]
                batch.append((key, value, encoded))
            futures += await send_in_batches(self._producer, topic, partition, batch)
        return futures


# topic, key, value, event id (as text) or None for a dead letter, and a dead letter's headers (JSON)
_Message = tuple[str, bytes | None, bytes | None, bytes | None, str]


def _messages(rows: Iterable[Any]) -> Iterable[_Message]:
    """The messages of outbox rows (id, topic, key, value, headers, event_id, value_codec), in order: a block
    gives its events as they were written."""
    for _, topic, key, value, headers, event_id, codec in rows:
        if codec == EVENTS_LZ4:
            for event in unpack_events(value):
                yield event.topic, event.key, event.value, event.event_id, "[]"
        else:
            yield topic, key, unpack(value, codec), event_id.encode() if event_id is not None else None, headers


async def send_in_batches(
    producer: AIOKafkaProducer,
    topic: str,
    partition: int,
    messages: Iterable[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> list[asyncio.Future[Any]]:
    """Hand (key, value, headers) messages for one partition to the producer as record batches, in order (a
    message larger than a whole batch goes on its own); returns the delivery futures."""
    futures = []
    batch, size = producer.create_batch(), 0
    for key, value, headers in messages:
        while batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            if size == 0:  # larger than a whole batch: on its own
                futures.append(await producer.send(topic, value=value, key=key, partition=partition, headers=headers))
                break
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch, size = producer.create_batch(), 0
        else:
            size += 1
    if size:
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of a key (the Java client's `Utils.murmur2`, aiokafka's `murmur2`), unsigned: the same
    values, for about 60% of the time of aiokafka's byte-by-byte loop (it runs once per order at least)."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        rest = words << 2
        if tail == 3:
            h ^= data[rest + 2] << 16
        if tail >= 2:
            h ^= data[rest + 1] << 8
        h = ((h ^ data[rest]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@lru_cache(maxsize=65536)
def _key_hash(key: bytes) -> int:
    return murmur2(key) & 0x7FFFFFFF


def partition_for(key: bytes | None, partitions: list[int]) -> int:
    """The partition the Java client (and aiokafka's default partitioner) would choose for `key`, so every
    event of one order lands in one partition whoever publishes it."""
    if key is None:
        return random.choice(partitions)
    return partitions[_key_hash(key) % len(partitions)]


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
