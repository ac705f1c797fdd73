"""One consumer group per service on the real broker: a batch may mix topics; each topic's records reach their
own handler, and a retry of one topic reads the whole batch again without applying the rest twice."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaProducer

from schemas import OrderCancelRequested
from services.order_state.tables import inbox, outbox
from services.runtime.broker import create_broker
from services.runtime.consumer import EventConsumer
from services.runtime.errors import RetryLater
from services.runtime.topics import ensure_topics
from tests.support import scalar


def request(event_id: uuid.UUID, reference: str) -> bytes:
    return json.dumps(
        {
            "event_id": str(event_id),
            "event_type": OrderCancelRequested.TOPIC,
            "schema_version": 1,
            "occurred_at": "2026-12-03T10:00:00Z",
            "order_reference": reference,
            "requested_by_role": "back_office",
            "reason": "test",
        }
    ).encode()


async def test_a_mixed_batch_goes_topic_by_topic_and_a_retry_applies_nothing_twice(engine, settings):
    run = uuid.uuid4().hex[:8]
    first, second = f"test.group.{run}.a", f"test.group.{run}.b"
    await ensure_topics(settings, [first, second])
    settings = settings.model_copy(update={"kafka_group_prefix": f"test-{run}"})
    handled: dict[str, list[uuid.UUID]] = {first: [], second: []}
    calls: list[str] = []
    refusals = 0

    def handler(topic: str):
        async def handle(uow, events) -> None:
            nonlocal refusals
            calls.append(topic)
            if len(calls) == 2:  # the second topic of the first batch: the database went away, once
                refusals += 1
                raise RetryLater("database unreachable")
            handled[topic].extend(item.event.event_id for item in events)

        return handle

    broker = create_broker(settings, "order_state")
    consumer = EventConsumer(settings, "order_state", engine, outbox, inbox)
    consumer.subscribe(first, OrderCancelRequested, handler(first), name=f"group-test-{run}-a")
    consumer.subscribe(second, OrderCancelRequested, handler(second), name=f"group-test-{run}-b")
    consumer.attach(broker)
    assert len(broker.subscribers) == 1  # one consumer for both topics
    delivered: list[tuple[str, int]] = []  # (topic, records) as the batches reach the routes
    process = consumer.process

    async def recording(records, route):
        delivered.append((records[0].topic, len(records)))
        return await process(records, route)

    consumer.process = recording

    ids = {first: [uuid.uuid4() for _ in range(5)], second: [uuid.uuid4() for _ in range(5)]}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for n in range(5):  # one order each: all on one partition per topic, so one batch can hold both topics
            for topic in (first, second):
                await producer.send(topic, request(ids[topic][n], "DE--GROUP-1"), key=b"DE--GROUP-1")
        await producer.flush()
    finally:
        await producer.stop()

    await broker.start()
    try:
        for _ in range(300):
            if len(handled[first]) >= 5 and len(handled[second]) >= 5:
                break
            await asyncio.sleep(0.1)
    finally:
        await broker.stop()
    assert refusals == 1
    # The first batch held both topics; the retry of the one that failed read the other's records again.
    one, other = delivered[0][0], delivered[1][0]
    assert one != other, delivered
    assert sorted(delivered[2:4]) == sorted([(one, 5), (other, 5)]), delivered
    assert handled[first] == ids[first]  # in order, once, though the batch was read again after the retry
    assert handled[second] == ids[second]
    group = await scalar(
        engine,
        "SELECT count(*) FROM order_state.inbox WHERE consumer IN (:a, :b)",
        a=f"group-test-{run}-a",
        b=f"group-test-{run}-b",
    )
    assert group == 10
