"""One database transaction: state change, inbox marker and outgoing events together."""

from __future__ import annotations

import json
import uuid
from typing import NamedTuple

from aiokafka.structs import ConsumerRecord
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.envelope import Event
from services.runtime.db import copy_rows
from services.runtime.errors import PermanentError
from services.runtime.json_codec import uuid_text
from services.runtime.outbox_codec import BLOCK_BYTES, BLOCK_EVENTS, EVENTS_LZ4, FramedEvent, pack, pack_events


def dlq_topic(service: str) -> str:
    return f"dlq.{service}"


JSON = "application/json"
MAX_MESSAGE_BYTES = 1_000_000  # Kafka's default message.max.bytes is 1,048,588; headers and framing need room
# What one message may be before compression: the relays' producer refuses bigger requests (max_request_size,
# RELAY_MAX_REQUEST_BYTES). An order of the contract's 10,000 lines, each with its shipment, is about 7 MB of
# order.created as written and a small fraction of that compressed.
MAX_UNCOMPRESSED_BYTES = 16_000_000
RELAY_MAX_REQUEST_BYTES = 16 * 1024 * 1024


class OutboxRow(NamedTuple):
    """One outgoing message as the outbox keeps it. An event has its id (the relay adds the event headers);
    a dead letter has no id and its headers as a JSON list of [name, value]. Big values are kept compressed
    (`value_codec`, see services.runtime.outbox_codec). A row can also hold several events of one transaction
    as one block (`value_codec` "events+lz4", `event_count` of them, `topic` naming their topics)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: str
    event_id: uuid.UUID | None = None
    value_codec: str | None = None
    event_count: int = 1


OUTBOX_COLUMNS = OutboxRow._fields


def event_headers(event: Event) -> list[tuple[str, str]]:
    """The Kafka headers of an event: its type and id repeated, and the content type."""
    return headers_of(event.event_type, event.event_id)


def headers_of(event_type: str, event_id: uuid.UUID | str) -> list[tuple[str, str]]:
    return [("event_type", event_type), ("event_id", str(event_id)), ("content-type", JSON)]


class UnitOfWork:
    """What a handler writes with: the open connection, `publish` for events, `dead_letter` for refusals."""

    def __init__(self, conn: AsyncConnection, outbox: Table, service: str, *, compressed_batches: bool = False) -> None:
        """`compressed_batches`: the relays publish compressed record batches (OMS_KAFKA_COMPRESSION_TYPE), so
        Kafka's message limit applies to an event's compressed size; otherwise to its size as written."""
        self.conn = conn
        self.service = service
        self._outbox = outbox
        self._compressed_batches = compressed_batches
        self._pending: list[OutboxRow] = []

    def publish(self, event: Event) -> None:
        """Queue an event for the outbox; it is written when the unit of work flushes."""
        self.publish_serialized(event.event_type, event.order_reference, event.event_id, event.model_dump_json())

    def publish_serialized(
        self, event_type: str, order_reference: str, event_id: uuid.UUID, value: bytes | str
    ) -> None:
        """Queue an event already serialised to its contract's JSON (for the busiest paths, where building the
        pydantic object only to serialise it would cost more than the rest of the work)."""
        encoded = value.encode() if isinstance(value, str) else value
        problem = self.too_big(encoded)
        if problem:
            # Kafka would refuse it, and an event the relay cannot publish would hold up every later one.
            raise PermanentError(f"{event_type} for {order_reference} would be {problem}")
        self._pending.append(OutboxRow(event_type, order_reference.encode(), encoded, "[]", event_id))

    def too_big(self, value: bytes) -> str | None:
        """Why a message with this value cannot be published, or None. Compressed batches are judged by the
        value's lz4 size, which zstd and gzip only improve on."""
        size = len(value)
        if size > MAX_UNCOMPRESSED_BYTES:
            return f"{size:,} bytes, over the {MAX_UNCOMPRESSED_BYTES:,} bytes a message may have before compression"
        if size <= MAX_MESSAGE_BYTES:
            return None
        if not self._compressed_batches:
            return f"{size:,} bytes, over Kafka's {MAX_MESSAGE_BYTES:,}-byte message limit"
        packed = len(pack(value)[0] or b"")
        if packed > MAX_MESSAGE_BYTES * 9 // 10:  # a tenth of room for the batch codec's own framing
            return f"{packed:,} bytes compressed ({size:,} as written), over Kafka's {MAX_MESSAGE_BYTES:,}-byte limit"
        return None

    def dead_letter(self, record: ConsumerRecord, reason: str, attempts: int = 1) -> None:
        """Send the original message, untouched, to this service's dead-letter topic with the reason (one too big
        to publish again goes without its body, and says so in `dlq.value_dropped`; its source partition and
        offset say where it is)."""
        original = [
            [name, value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)]
            for name, value in (record.headers or ())
            if not name.startswith("dlq.")
        ]
        body = record.value
        dropped = self.too_big(body) if body else None
        if dropped:  # the dead letter must not hold up the relay: it keeps the reason and where to find it
            original.append(["dlq.value_dropped", f"the original message is {dropped}"])
            body = None
        self._pending.append(
            OutboxRow(
                dlq_topic(self.service),
                record.key,
                body,
                json.dumps(
                    [
                        *original,
                        ["dlq.reason", reason[:4000]],
                        ["dlq.service", self.service],
                        ["dlq.source_topic", record.topic],
                        ["dlq.source_partition", str(record.partition)],
                        ["dlq.source_offset", str(record.offset)],
                        ["dlq.attempts", str(attempts)],
                    ]
                ),
            )
        )

    async def flush(self) -> None:
        if not self._pending:
            return
        # One COPY for all of the transaction's events: consecutive events go together as blocks (see
        # services.runtime.outbox_codec), a dead letter or a big event on its own row, big values compressed.
        rows: list[OutboxRow] = []
        block: list[OutboxRow] = []
        size = 0
        for row in self._pending:
            length = len(row.value or b"")
            if block and (row.event_id is None or len(block) == BLOCK_EVENTS or size + length > BLOCK_BYTES):
                rows.append(_as_row(block))
                block, size = [], 0
            if row.event_id is None or length > BLOCK_BYTES:
                rows.append(_as_row([row]))
            else:
                block.append(row)
                size += length
        if block:
            rows.append(_as_row(block))
        await copy_rows(self.conn, self._outbox.schema, self._outbox.name, OUTBOX_COLUMNS, rows)
        # Delivered at commit; wakes the relays (several NOTIFYs in one transaction fold into one).
        await self.conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(self._outbox)})
        self._pending.clear()


def _as_row(rows: list[OutboxRow]) -> OutboxRow:
    """Pending rows as the outbox keeps them: one row as it is (its value compressed when big), several events
    as one block."""
    if len(rows) == 1:
        row = rows[0]
        value, codec = pack(row.value)
        return row if codec is None else row._replace(value=value, value_codec=codec)
    events = [FramedEvent(row.topic, row.key or b"", uuid_text(row.event_id), row.value or b"") for row in rows]
    topics = ",".join(dict.fromkeys(row.topic for row in rows))
    return OutboxRow(topics, None, pack_events(events), "[]", None, EVENTS_LZ4, len(rows))


def outbox_channel(outbox: Table) -> str:
    return f"{outbox.schema}_outbox"
