"""The outbox relay against the real database and broker: an event leaves the outbox only with its delivery.

Each test has an outbox of its own (own schema), so the running services' relays never touch its rows.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord
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
    ids = [uuid.uuid4() for _ in range(5)]
    # Two transactions of one event each (a small one and a big one), one of three events.
    for group in ([0], [2], [1, 3, 4]):
        async with engine.begin() as conn:
            uow = UnitOfWork(conn, table, "relay-test")
            for n in group:
                uow.publish_serialized(topic, f"R-{n}", ids[n], value_of(n))
            await uow.flush()
    # A lone event has a row of its own, a big value kept compressed; a transaction's events go as one block.
    kept = await rows(
        engine, f"SELECT key, topic, value_codec, event_count, length(value) AS size FROM {schema}.outbox ORDER BY id"
    )
    assert [(row.key, row.topic, row.value_codec, row.event_count) for row in kept] == [
        (b"R-0", topic, None, 1),
        (b"R-2", topic, "lz4", 1),
        (None, topic, "events+lz4", 3),
    ]
    assert kept[1].size < len(value_of(2)) / 5

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

        assert await relay.relay_once() == 5  # events, not rows
        assert await scalar(engine, f"SELECT count(*) FROM {schema}.outbox") == 0
        assert await relay.relay_once() == 0  # and nothing twice
    finally:
        await relay._producer.stop()

    async with TopicReader(settings, topic) as reader:
        records = await reader.wait_for(lambda found: len(found) >= 5)
    assert sorted((r.key, r.value) for r in records) == [(f"R-{n}".encode(), value_of(n)) for n in range(5)]
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


async def test_blocks_and_rows_leave_in_the_order_they_were_written_and_a_take_is_bounded_in_events(engine, settings):
    """Blocks of at most 32 events, a dead letter on its own row between them, events of two topics; a relay
    whose batch is 10 events takes a bigger block whole (never half) and otherwise stays within 10."""
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    first, second = f"test.{schema}.a", f"test.{schema}.b"
    await ensure_topics(settings, [first, second, "dlq.relay-test"])
    table = await own_outbox(engine, schema)
    written: list[tuple[str, str, str]] = []  # topic, event id, value in the order they were written
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, table, "relay-test")
        for n in range(45):
            if n == 40:
                uow.dead_letter(ConsumerRecord("src", 0, 7, 0, 0, b"K", b"broken", None, 6, 6, ()), "undecodable")
            topic, event_id = (first if n % 3 else second), uuid.uuid4()
            uow.publish_serialized(topic, "K", event_id, json.dumps({"n": n, "name": "Straße"}).encode())
            written.append((topic, str(event_id), json.dumps({"n": n, "name": "Straße"})))
        await uow.flush()
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, table, "relay-test")
        for n in range(45, 48):
            event_id = uuid.uuid4()
            uow.publish_serialized(first, "K", event_id, json.dumps({"n": n}).encode())
            written.append((first, str(event_id), json.dumps({"n": n})))
        await uow.flush()
    kept = await rows(engine, f"SELECT topic, key, value_codec, event_count FROM {schema}.outbox ORDER BY id")
    assert [(row.value_codec, row.event_count) for row in kept] == [
        ("events+lz4", 32),
        ("events+lz4", 8),
        (None, 1),  # the dead letter
        ("events+lz4", 5),
        ("events+lz4", 3),
    ]
    assert kept[0].topic == f"{second},{first}" and kept[0].key is None  # the topics a block holds
    assert kept[2].topic == "dlq.relay-test"

    relay = OutboxRelay(settings.model_copy(update={"relay_batch_size": 10}), engine, table, "relay-test")
    await relay._producer.start()
    try:
        taken = [await relay.relay_once() for _ in range(4)]
    finally:
        await relay._producer.stop()
    # The block of 32 alone; 8 and the dead letter (the next 5 would make 14); the last two blocks; nothing.
    assert taken == [32, 9, 8, 0]

    # One key: every event in one partition, in the order written, each with its own headers.
    seen: list[tuple[str, str, str]] = []
    for topic in (first, second):
        async with TopicReader(settings, topic) as reader:
            count = sum(1 for t, _, _ in written if t == topic)
            records = await reader.wait_for(lambda found, count=count: len(found) >= count)
        assert len({r.partition for r in records}) == 1
        for r in sorted(records, key=lambda r: r.offset):
            headers = {name: value.decode() for name, value in r.headers}
            assert headers["event_type"] == topic and r.key == b"K"
            seen.append((topic, headers["event_id"], r.value.decode()))
    for topic in (first, second):
        assert [s for s in seen if s[0] == topic] == [w for w in written if w[0] == topic]
    async with TopicReader(settings, "dlq.relay-test") as reader:
        letters = await reader.wait_for(lambda found: any(r.value == b"broken" for r in found))
    letter = next(r for r in letters if r.value == b"broken")
    assert ("dlq.reason", b"undecodable") in letter.headers


async def test_a_block_that_fails_halfway_through_publishing_stays_whole_and_is_published_again(
    engine, settings, monkeypatch
):
    """At least once: the events a block had already handed to Kafka go again with the rest (consumers drop
    them by event id, the inbox); none is lost."""
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    topic = f"test.{schema}"
    await ensure_topics(settings, [topic])
    table = await own_outbox(engine, schema)
    ids = [uuid.uuid4() for _ in range(12)]
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, table, "relay-test")
        for n, event_id in enumerate(ids):  # keys spread over the partitions: one record batch each
            uow.publish_serialized(topic, f"K-{n}", event_id, json.dumps({"n": n}).encode())
        await uow.flush()

    relay = OutboxRelay(settings, engine, table, "relay-test")
    await relay._producer.start()
    try:
        send_batch = relay._producer.send_batch
        calls = 0

        async def fails_second(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == 2:
                raise KafkaConnectionError("broker went away")
            return await send_batch(*args, **kwargs)

        monkeypatch.setattr(relay._producer, "send_batch", fails_second)
        with pytest.raises(KafkaConnectionError):
            await relay.relay_once()
        assert [tuple(row) for row in await rows(engine, f"SELECT value_codec, event_count FROM {schema}.outbox")] == [
            ("events+lz4", 12)
        ]
        monkeypatch.undo()
        assert await relay.relay_once() == 12
    finally:
        await relay._producer.stop()
    async with TopicReader(settings, topic) as reader:
        records = await reader.wait_for(
            lambda found: {dict(r.headers)["event_id"] for r in found} >= {str(i).encode() for i in ids}
        )
    assert {dict(r.headers)["event_id"].decode() for r in records} == {str(i) for i in ids}
    assert 12 < len(records) < 24  # the first partition's batch went twice


async def test_an_idle_relay_waits_for_news_whatever_its_batch_size(engine, settings):
    """A batch size below a block's 32 events must not turn the wait for NOTIFY into a loop of empty takes."""
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    table = await own_outbox(engine, schema)
    relay = OutboxRelay(settings.model_copy(update={"relay_batch_size": 10}), engine, table, "relay-test")
    takes = 0
    relay_once = relay.relay_once

    async def counted() -> int:
        nonlocal takes
        takes += 1
        return await relay_once()

    relay.relay_once = counted
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(2.5)  # an empty outbox: one take, then a wait of up to a second for each next one
    stop.set()
    await running
    assert 1 <= takes <= 4


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
