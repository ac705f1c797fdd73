"""The outbox relay against the real database and broker: an event leaves the outbox only with its delivery.

Each test has an outbox of its own (own schema), so the running services' relays never touch its rows.
"""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError
from sqlalchemy import MetaData, text

from services.runtime.messaging_tables import outbox_table
from services.runtime.relay import OutboxRelay, partition_for
from services.runtime.topics import ensure_topics
from services.runtime.unit_of_work import UnitOfWork
from tests.support import TopicReader, rows, scalar


def value_of(n: int) -> bytes:
    """Event n: the last one an order.created-sized JSON document."""
    lines = [
        {"line_number": line, "sku": f"SKU-{line}", "name": "Organic T-shirt, M"} for line in range(60 if n == 2 else 0)
    ]
    return json.dumps({"n": n, "lines": lines}).encode()


async def own_outbox(engine, name: str):
    metadata = MetaData(schema=name)
    table = outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {name}"))
        await conn.run_sync(metadata.create_all)
    return table


async def test_rows_stay_in_the_outbox_while_kafka_refuses_them_and_leave_once_it_takes_them(
    engine, settings, monkeypatch
):
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    topic = f"test.{schema}"
    await ensure_topics(settings, [topic])
    table = await own_outbox(engine, schema)
    ids = [uuid.uuid4() for _ in range(3)]
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, table, "relay-test")
        for n, event_id in enumerate(ids):
            uow.publish_serialized(topic, f"R-{n}", event_id, value_of(n))
        await uow.flush()
    # Big values are kept compressed, small ones as they are.
    kept = await rows(engine, f"SELECT key, value_codec, length(value) AS size FROM {schema}.outbox ORDER BY key")
    assert [(row.key, row.value_codec) for row in kept] == [(b"R-0", None), (b"R-1", None), (b"R-2", "lz4")]
    assert kept[2].size < len(value_of(2)) / 5

    relay = OutboxRelay(settings, engine, table, "relay-test")
    await relay._producer.start()
    try:

        async def refused(rows):
            raise KafkaConnectionError("broker unreachable")

        monkeypatch.setattr(relay, "_send", refused)
        with pytest.raises(KafkaConnectionError):
            await relay.relay_once()
        assert await scalar(engine, f"SELECT count(*) FROM {schema}.outbox") == 3  # nothing lost
        monkeypatch.undo()

        assert await relay.relay_once() == 3
        assert await scalar(engine, f"SELECT count(*) FROM {schema}.outbox") == 0
        assert await relay.relay_once() == 0  # and nothing twice
    finally:
        await relay._producer.stop()

    async with TopicReader(settings, topic) as reader:
        records = await reader.wait_for(lambda found: len(found) >= 3)
    assert sorted((r.key, r.value) for r in records) == [(f"R-{n}".encode(), value_of(n)) for n in range(3)]
    # Each with its event's headers, on the partition its key chooses (as the Kafka clients choose it).
    by_key = {r.key: r for r in records}
    for n, event_id in enumerate(ids):
        record = by_key[f"R-{n}".encode()]
        assert [(name, value.decode()) for name, value in record.headers] == [
            ("event_type", topic),
            ("event_id", str(event_id)),
            ("content-type", "application/json"),
        ]
        assert record.partition == partition_for(record.key, sorted(range(settings.kafka_topic_partitions)))


async def test_statements_sent_to_the_driver_first_are_part_of_the_transaction(engine):
    """COPY and other driver-level statements before any SQLAlchemy statement still roll back with it."""
    from services.runtime.db import copy_rows, driver_connection

    schema = f"relay_{uuid.uuid4().hex[:8]}"
    await own_outbox(engine, schema)
    with pytest.raises(RuntimeError, match="handler failed"):
        async with engine.begin() as conn:
            await (await driver_connection(conn)).execute(
                f"INSERT INTO {schema}.outbox (topic, value) VALUES ('t', 'x')"
            )
            await copy_rows(conn, schema, "outbox", ("topic", "value"), [("t", b"y")])
            raise RuntimeError("handler failed")
    assert await scalar(engine, f"SELECT count(*) FROM {schema}.outbox") == 0
