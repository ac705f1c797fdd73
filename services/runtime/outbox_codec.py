"""How outbox values are kept: big ones compressed with lz4.

An outbox row lives for milliseconds, but PostgreSQL writes it in full twice (table and write-ahead log)
and deletes it again: an order.created of about 4 kB cost PostgreSQL 46 us of CPU to write and take as
written, 26 compressed to a sixth of its size (bench/bench_outbox.py, 1.8x). Compressing and uncompressing
with lz4 costs a few microseconds. Small values (most events) are kept as they are.
tests/integration/test_relay.py holds the round trip.
"""

from __future__ import annotations

import cramjam

LZ4 = "lz4"
PACK_FROM_BYTES = 1024  # below this, compression saves PostgreSQL less than it costs


def pack(value: bytes | None) -> tuple[bytes | None, str | None]:
    """The value as the outbox keeps it, and its codec (None: as is)."""
    if value is None or len(value) < PACK_FROM_BYTES:
        return value, None
    return bytes(cramjam.lz4.compress_block(value)), LZ4


def unpack(value: bytes | None, codec: str | None) -> bytes | None:
    """The value as it was written."""
    if codec is None or value is None:
        return value
    if codec != LZ4:
        raise ValueError(f"unknown outbox value codec {codec!r}")
    return bytes(cramjam.lz4.decompress_block(value))
