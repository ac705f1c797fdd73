"""What the integration and end-to-end tests use to act and look like a user: a plain aiokafka
producer, topic readers, SQL queries, the SMTP sink's files."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.runtime.embedded import ReceivedMail, SmtpSink, wait_until
from services.runtime.settings import Settings
from services.samples import sample_order

BCC = ["audit@shop.example", "books@shop.example"]


def new_order(number: int = 1, **changes: Any) -> dict[str, Any]:
    """An order.placed document as checkout would send it (plain JSON, not a project model)."""
    run = uuid.uuid4().hex[:8].upper()
    order = json.loads(sample_order(number, run=run).model_dump_json())
    order["customer"]["email"] = f"customer-{run.lower()}-{number}@example.com"
    order.update(changes)
    return order


async def publish_raw(
    settings: Settings, topic: str, payloads: list[tuple[bytes | None, bytes]], *, compression_type: str | None = None
) -> None:
    """Publish with a plain aiokafka producer: (key, value) pairs."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=False,
        compression_type=compression_type,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        for key, value in payloads:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def publish_orders(settings: Settings, orders: list[dict[str, Any]]) -> None:
    await publish_raw(
        settings,
        "order.placed",
        [(order["order_reference"].encode(), json.dumps(order).encode()) for order in orders],
    )


class TopicReader:
    """Reads a topic from its beginning, without a consumer group (nothing is committed)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.records: list[Any] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, enable_auto_commit=False, group_id=None
        )
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic)
        for _ in range(50):
            if partitions:
                break
            await asyncio.sleep(0.1)
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self.topic)
        self._consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions or [])])
        await self._consumer.seek_to_beginning()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def poll(self) -> list[Any]:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.records.extend(records)
        return self.records

    async def wait_for(self, predicate: Callable[[list[Any]], Any], timeout: float = 30) -> list[Any]:
        async def check() -> Any:
            await self.poll()
            return predicate(self.records)

        await wait_until(check, timeout=timeout, interval=0.05)
        return self.records

    def events(self, order_reference: str | None = None) -> list[dict[str, Any]]:
        found = []
        for record in self.records:
            try:
                event = json.loads(record.value)
            except (TypeError, ValueError):
                continue
            if order_reference is None or event.get("order_reference") == order_reference:
                found.append(event)
        return found


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


def mails_to(sink: SmtpSink, recipient: str) -> list[ReceivedMail]:
    return [mail for mail in sink.received() if recipient in mail.rcpt_tos]


async def settle(seconds: float = 1.5) -> None:
    """Give in-flight work a moment so that 'nothing more happened' assertions mean something."""
    await asyncio.sleep(seconds)


async def item_states(engine: AsyncEngine, reference: str) -> dict[int, str]:
    found = await rows(
        engine,
        """SELECT i.id, i.state FROM order_state.sales_order_item i JOIN order_state.sales_order o
           ON o.id = i.order_id WHERE o.order_reference = :r ORDER BY i.id""",
        r=reference,
    )
    return {row.id: row.state for row in found}


async def wait_for_states(
    engine: AsyncEngine, reference: str, expected: set[str], timeout: float = 30
) -> dict[int, str]:
    """Wait until every item of the order is in one of `expected` (and there are items)."""

    async def check() -> dict[int, str] | None:
        states = await item_states(engine, reference)
        return states if states and set(states.values()) <= expected else None

    try:
        return await wait_until(check, timeout=timeout)
    except TimeoutError:
        raise AssertionError(
            f"items of {reference} are in {await item_states(engine, reference)}, expected {expected}"
        ) from None


async def request_event(settings: Settings, reference: str, event: str, **scope: Any) -> dict[str, Any]:
    """Publish order.item_event_requested as plain JSON; returns the request."""
    request = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.item_event_requested",
        "occurred_at": "2026-11-23T10:00:00Z",
        "order_reference": reference,
        "event": event,
        **scope,
    }
    await publish_raw(settings, "order.item_event_requested", [(reference.encode(), json.dumps(request).encode())])
    return request


async def request_split(settings: Settings, reference: str, item_ids: list[int], **target: Any) -> dict[str, Any]:
    """Publish shipment.split_requested as plain JSON (target_shipment_id=... or new_shipment={...})."""
    request = {
        "event_id": str(uuid.uuid4()),
        "event_type": "shipment.split_requested",
        "occurred_at": "2026-11-23T10:00:00Z",
        "order_reference": reference,
        "item_ids": item_ids,
        **target,
    }
    await publish_raw(settings, "shipment.split_requested", [(reference.encode(), json.dumps(request).encode())])
    return request


async def shipments_of(engine: AsyncEngine, reference: str) -> dict[int, dict[str, Any]]:
    """Shipment id -> {status, method_key, expense, date, items} as shipping stores it."""
    found = await rows(
        engine,
        """SELECT s.id, s.status, s.method_key, s.expense_amount, s.requested_delivery_date,
                  array_agg(si.item_id ORDER BY si.item_id) FILTER (WHERE si.item_id IS NOT NULL) AS items
           FROM shipping.shipment s LEFT JOIN shipping.shipment_item si ON si.shipment_id = s.id
           WHERE s.order_reference = :r GROUP BY s.id ORDER BY s.id""",
        r=reference,
    )
    return {
        row.id: {
            "status": row.status,
            "method": row.method_key,
            "expense": row.expense_amount,
            "date": row.requested_delivery_date,
            "items": row.items or [],
        }
        for row in found
    }


def expand(ranges: list[list[int]]) -> list[int]:
    """Inclusive [first, last] id ranges, as events carry them, to the ids."""
    return [item_id for first, last in ranges for item_id in range(first, last + 1)]


def oms(*args: object, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the `oms` command as a user would, with extra settings in `env`."""
    return subprocess.run(
        [sys.executable, "-m", "services", *map(str, args)],
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
