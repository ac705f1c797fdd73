"""The inbox against the real database: each event reaches its handler once per consumer, however often and
in whatever batches it is delivered."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka.structs import ConsumerRecord

from schemas import OrderCancelRequested
from services.order_state.tables import inbox, outbox
from services.runtime.consumer import EventConsumer, Route
from tests.support import scalar


def request(event_id: uuid.UUID, offset: int) -> ConsumerRecord:
    value = {
        "event_id": str(event_id),
        "event_type": OrderCancelRequested.TOPIC,
        "schema_version": 1,
        "occurred_at": "2026-12-02T10:00:00Z",
        "order_reference": "DE--INBOX-1",
        "requested_by_role": "back_office",
        "reason": "test",
    }
    body = json.dumps(value).encode()
    return ConsumerRecord("order.cancel_requested", 0, offset, 0, 0, b"DE--INBOX-1", body, None, 11, len(body), [])


async def test_each_event_reaches_the_handler_once_whatever_the_batches(engine, settings):
    handled: list[uuid.UUID] = []

    async def handler(uow, events) -> None:
        handled.extend(item.event.event_id for item in events)

    name = f"inbox-test-{uuid.uuid4().hex[:8]}"
    route = Route(OrderCancelRequested, handler, name)
    consumer = EventConsumer(settings, "order_state", engine, outbox, inbox)
    a, b, c = (uuid.uuid4() for _ in range(3))

    await consumer._transaction([request(a, 0), request(b, 1)], route)  # all new: the usual case
    assert handled == [a, b]
    await consumer._transaction([request(b, 1), request(c, 2), request(c, 3), request(a, 0)], route)
    assert handled == [a, b, c]  # b and a seen before, c twice in one batch: once
    await consumer._transaction([request(c, 2)], route)
    assert handled == [a, b, c]
    assert await scalar(engine, "SELECT count(*) FROM order_state.inbox WHERE consumer = :n", n=name) == 3


async def test_two_replicas_claiming_the_same_events_at_once_handle_each_once(engine, settings):
    """A rebalance can hand a batch to a second replica while the first is still in its transaction: the
    second one's claim waits for the first to commit, finds the events taken and handles only the new one."""
    handled: list[uuid.UUID] = []
    first_inside = asyncio.Event()

    async def handler(uow, events) -> None:
        handled.extend(item.event.event_id for item in events)
        first_inside.set()
        await asyncio.sleep(0.5)  # the transaction stays open while the other replica claims

    name = f"inbox-test-{uuid.uuid4().hex[:8]}"
    route = Route(OrderCancelRequested, handler, name)
    first = EventConsumer(settings, "order_state", engine, outbox, inbox)
    second = EventConsumer(settings, "order_state", engine, outbox, inbox)
    a, b, c = (uuid.uuid4() for _ in range(3))

    async def second_replica() -> None:
        await first_inside.wait()
        await second._transaction([request(a, 0), request(b, 1), request(c, 2)], route)

    await asyncio.gather(first._transaction([request(a, 0), request(b, 1)], route), second_replica())
    assert sorted(handled) == sorted([a, b, c])
    assert await scalar(engine, "SELECT count(*) FROM order_state.inbox WHERE consumer = :n", n=name) == 3
