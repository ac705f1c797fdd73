"""How outbox values are kept: big ones compressed with lz4, and a transaction's events together.

An outbox row lives for milliseconds, but PostgreSQL writes it in full twice (table and write-ahead log)
and deletes it again: an order.created of about 4 kB cost PostgreSQL 46 us of CPU to write and take as
written, 26 compressed to a sixth of its size (bench/bench_outbox.py, 1.8x). Compressing and uncompressing
with lz4 costs a few microseconds. Small values (most events) are kept as they are.

Most of what a row costs PostgreSQL does not depend on its size (a heap tuple, a primary-key entry, a
delete, their write-ahead log), so the events of one transaction are kept together: up to `BLOCK_EVENTS`
of them (and `BLOCK_BYTES` as written) framed one after another and compressed as one lz4 block, one row
(`value_codec` "events+lz4", `event_count` events). A block stays small enough to stay inline in its row
(a few kB compressed), where a huge one would go to TOAST, row by row again. The relay publishes the events of
a block in the order they were written, as it publishes rows in id order.
tests/integration/test_relay.py holds the round trips.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import cramjam

LZ4 = "lz4"
EVENTS_LZ4 = "events+lz4"
PACK_FROM_BYTES = 1024  # below this, compression saves PostgreSQL less than it costs
BLOCK_EVENTS = 32  # events in one outbox row at most
BLOCK_BYTES = 48 * 1024  # and their values as written at most (an event bigger than this gets a row of its own)

# Each event of a block: topic length, key length, event id (its 36 characters, as the relay's header carries
# it), value length; then topic, key and value.
_FRAME = struct.Struct(">HH36sI")


class FramedEvent(NamedTuple):
    """One event of a block: what the relay needs to publish it."""

    topic: str
    key: bytes
    event_id: bytes  # as text: b"0190c7f2-..."
    value: bytes


def pack(value: bytes | None) -> tuple[bytes | None, str | None]:
    """The value as the outbox keeps it, and its codec (None: as is)."""
    if value is None or len(value) < PACK_FROM_BYTES:
        return value, None
    return bytes(cramjam.lz4.compress_block(value)), LZ4


def unpack(value: bytes | None, codec: str | None) -> bytes | None:
    """The value as it was written (for one event; a block is read with `unpack_events`)."""
    if codec is None or value is None:
        return value
    if codec != LZ4:
        raise ValueError(f"unknown outbox value codec {codec!r}")
    return bytes(cramjam.lz4.decompress_block(value))


def pack_events(events: Sequence[FramedEvent]) -> bytes:
    """Several events as one outbox value: framed in order, compressed as one lz4 block."""
    frame = _FRAME.pack
    parts: list[bytes] = []
    for topic, key, event_id, value in events:
        name = topic.encode()
        parts += (frame(len(name), len(key), event_id, len(value)), name, key, value)
    return bytes(cramjam.lz4.compress_block(b"".join(parts)))


def unpack_events(value: bytes) -> list[FramedEvent]:
    """The events of a block, in the order they were written."""
    data = bytes(cramjam.lz4.decompress_block(value))
    events: list[FramedEvent] = []
    head, unframe = _FRAME.size, _FRAME.unpack_from
    at, end = 0, len(data)
    while at < end:
        topic_length, key_length, event_id, value_length = unframe(data, at)
        at += head
        topic = data[at : at + topic_length].decode()
        at += topic_length
        key = data[at : at + key_length]
        at += key_length
        events.append(FramedEvent(topic, key, event_id, data[at : at + value_length]))
        at += value_length
    if at != end:
        raise ValueError("outbox block is cut short")
    return events
