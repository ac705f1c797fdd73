"""One database transaction: state change, inbox marker and outgoing events together."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord
from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.envelope import Event


def dlq_topic(service: str) -> str:
    return f"dlq.{service}"


def event_headers(event: Event) -> list[list[str]]:
    return [
        ["event_type", event.event_type],
        ["event_id", str(event.event_id)],
        ["content-type", "application/json"],
    ]


class UnitOfWork:
    """What a handler writes with: the open connection, `publish` for events, `dead_letter` for refusals."""

    def __init__(self, conn: AsyncConnection, outbox: Table, service: str) -> None:
        self.conn = conn
        self.service = service
        self._outbox = outbox
        self._pending: list[dict[str, Any]] = []

    def publish(self, event: Event) -> None:
        """Queue an event for the outbox; it is written when the unit of work flushes."""
        self._pending.append(
            {
                "topic": event.event_type,
                "key": event.order_reference.encode(),
                "value": event.model_dump_json().encode(),
                "headers": event_headers(event),
            }
        )

    def dead_letter(self, record: ConsumerRecord, reason: str, attempts: int = 1) -> None:
        """Send the original message, untouched, to this service's dead-letter topic with the reason."""
        original = [
            [name, value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)]
            for name, value in (record.headers or ())
            if not name.startswith("dlq.")
        ]
        self._pending.append(
            {
                "topic": dlq_topic(self.service),
                "key": record.key,
                "value": record.value,
                "headers": [
                    *original,
                    ["dlq.reason", reason[:4000]],
                    ["dlq.service", self.service],
                    ["dlq.source_topic", record.topic],
                    ["dlq.source_partition", str(record.partition)],
                    ["dlq.source_offset", str(record.offset)],
                    ["dlq.attempts", str(attempts)],
                ],
            }
        )

    async def flush(self) -> None:
        if not self._pending:
            return
        await self.conn.execute(insert(self._outbox), self._pending)
        # Delivered at commit; wakes the relays (several NOTIFYs in one transaction fold into one).
        await self.conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(self._outbox)})
        self._pending.clear()


def outbox_channel(outbox: Table) -> str:
    return f"{outbox.schema}_outbox"
