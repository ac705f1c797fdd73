"""dump_json writes what pydantic's to_json writes, for everything the busy paths serialise."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic_core import to_json

from schemas import OrderPlaced, to_ranges
from schemas.envelope import new_event_id
from services.runtime.documents import document_validator
from services.runtime.json_codec import dump_json, uuid_text
from services.samples import sample_order


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 23, 18, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 18, 0, 0, 123, tzinfo=UTC),
        datetime(2026, 11, 23, 18, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 11, 23, 18, 0),
        date(2026, 11, 23),
        uuid.UUID("7e9cbd5f-3d41-4c68-892d-9dcd8dff07e3"),
        19.0,
        0.1,
        1e-7,
        1e22,
        'Straße "7" \\ \u2028 😀',
        None,
        True,
        [(1, 3), (7, 7)],
        {"b": 1, "a": [None, False]},
    ],
    ids=repr,
)
def test_the_bytes_are_the_same_as_pydantic_writes(value):
    assert dump_json(value) == to_json(value)


def test_a_placed_order_document_is_written_byte_for_byte_as_pydantic_writes_it():
    document = document_validator(OrderPlaced).validate_json(sample_order(3, run="J").model_dump_json())
    assert dump_json(document) == to_json(document)
    assert json.loads(dump_json(document["lines"])) == json.loads(to_json(document["lines"]))


def test_what_orjson_refuses_is_still_written():
    huge = {"unit_price": 10**30}  # beyond 64 bits: the contract allows it, orjson does not
    assert dump_json(huge) == b'{"unit_price":1000000000000000000000000000000}'


@pytest.mark.parametrize(
    ("ids", "ranges"),
    [
        ([], []),
        ([5], [(5, 5)]),
        ([5, 6, 7], [(5, 7)]),
        ([7, 5, 6], [(5, 7)]),
        ({7, 5, 6}, [(5, 7)]),
        ([1, 2, 3, 7], [(1, 3), (7, 7)]),
        ([1, 3, 4], [(1, 1), (3, 4)]),
        ([3, 4, 6, 5], [(3, 6)]),
        (list(range(100, 100_100)), [(100, 100_099)]),
        (range(100, 100_100), [(100, 100_099)]),
        (range(8, 9), [(8, 8)]),
        (range(8, 8), []),
        (range(1, 8, 3), [(1, 1), (4, 4), (7, 7)]),
    ],
)
def test_ids_become_inclusive_ranges(ids, ranges):
    assert to_ranges(ids) == ranges


@pytest.mark.parametrize(
    ("reserved", "start", "count", "expected"),
    [
        ([10, 11, 12, 13], 1, 3, range(11, 14)),
        ([10, 11, 12, 13], 0, 1, range(10, 11)),
        ([10, 11, 40, 41], 1, 2, [11, 40]),  # another replica took the ids between
        ([10, 11, 40, 41], 0, 4, [10, 11, 40, 41]),
    ],
)
def test_a_lines_reserved_ids_are_a_range_when_consecutive(reserved, start, count, expected):
    from services.order_state.handlers import consecutive

    ids = consecutive(reserved, start, count)
    assert ids == expected and type(ids) is type(expected)
    assert to_ranges(ids) == to_ranges(reserved[start : start + count])


def test_reserved_blocks_become_ids_in_the_order_they_were_reserved():
    from services.order_state.state_store import ids_of_blocks
    from services.order_state.tables import ID_BLOCK

    assert ids_of_blocks([1], 3) == [1, 2, 3]
    assert ids_of_blocks([1, 1 + ID_BLOCK], ID_BLOCK + 2) == [*range(1, ID_BLOCK + 1), 1 + ID_BLOCK, 2 + ID_BLOCK]
    # another replica took the block between: the ids skip it
    assert ids_of_blocks([1, 1 + 2 * ID_BLOCK], ID_BLOCK + 1)[-2:] == [ID_BLOCK, 1 + 2 * ID_BLOCK]
    assert ids_of_blocks([], 0) == []


def test_new_event_ids_are_ordinary_uuid7s_in_time_order() -> None:
    ids = [new_event_id() for _ in range(2_000)]
    assert len(set(ids)) == len(ids)
    for event_id in ids[:50]:
        assert type(event_id) is uuid.UUID
        assert event_id.version == 7 and event_id.variant == uuid.RFC_4122
        assert event_id.is_safe is uuid.SafeUUID.unknown
        again = uuid.UUID(str(event_id))
        assert again == event_id and hash(again) == hash(event_id) and repr(again) == repr(event_id)
        assert uuid.UUID(bytes=event_id.bytes) == event_id
    # UUIDv7s begin with their millisecond: later ids never sort before earlier ones
    assert [event_id.int >> 80 for event_id in ids] == sorted(event_id.int >> 80 for event_id in ids)
    assert to_json(ids[0]) == json.dumps(str(ids[0])).encode() == dump_json(ids[0])


@pytest.mark.parametrize(
    "value",
    [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID("7e9cbd5f-3d41-4c68-892d-9dcd8dff07e3"), uuid.uuid4()],
)
def test_uuid_text_is_the_canonical_text(value: uuid.UUID) -> None:
    assert uuid_text(value) == str(value).encode()
    event_id = new_event_id()
    assert uuid_text(event_id) == str(event_id).encode()
