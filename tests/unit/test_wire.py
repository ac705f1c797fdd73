"""order.placed decoded into structs (services.runtime.wire) must be exactly what its contract makes of it.

The fast path may refuse more than the contract (the contract then decides), never less, and what it accepts must
equal the contract's own result. Checked on thousands of orders mutated at random (fixed seeds) with values chosen
to sit on every edge the contract has: whitespace to strip, control characters raw and escaped, lengths at their
limits, codes, e-mail addresses, times in other zones or past microseconds, numbers at their bounds, lax
coercions, unknown and missing fields.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, date, datetime
from typing import Annotated

import msgspec
import pytest
from pydantic import BaseModel, StringConstraints, ValidationError, field_validator
from pydantic_core import to_json

from schemas import OrderPlaced
from schemas.envelope import Contract
from services.runtime.consumer import EventConsumer, decode
from services.runtime.documents import document_validator
from services.runtime.json_codec import encode_json
from services.runtime.settings import Settings
from services.runtime.wire import DocumentDecoder, Unsupported, document_decoder
from services.samples import sample_order
from tests.unit.test_runtime import record

KEPT = (datetime, date, uuid.UUID)

TEXTS = [
    "",
    " ",
    "Anna",
    " Anna",
    "Anna ",
    "\u00a0Anna",
    "Anna\u2003",
    "\u3000",
    "A\nB",
    "A\tB",
    "A\rB",
    "A\x7fB",
    "A\x85B",
    "A\x9fB",
    "A\u00a0B",
    "Stra\u00dfe",
    "\U0001f600",
    "x" * 64,
    "x" * 65,
    "x" * 254,
    "x" * 255,
    "x" * 256,
    "\u00fc" * 255,
    "\u00fc" * 256,
    "DE",
    "de",
    "D",
    "DEU",
    "EUR",
    "eur",
    "EURO",
    "de_DE",
    "de-DE",
    "deu_AT",
    "anna@example.com",
    "anna@example",
    "anna schmidt@example.com",
    "m\u00fcller@b\u00fccher.example",
    "@example.com",
    "a@b.c\n",
    "SKU-1",
    "SKU 1",
    "SKU_1.x",
    "SKU/1",
    "REF:1/2",
    "-REF",
    "2026-12-03T11:27:48Z",
    "2026-12-03T11:27:48.123456Z",
    "2026-12-03T11:27:48.1234567Z",
    "2026-12-03T11:27:48.9999999Z",
    "2026-12-03T11:27:48+01:00",
    "2026-12-03T11:27:48-00:00",
    "2026-12-03T11:27:48",
    "2026-12-03 11:27:48Z",
    "2026-12-03t11:27:48z",
    "2026-12-03T24:00:00Z",
    "2026-12-03",
    "2026-02-30",
    "1700000000",
    "6BEBEB9F-98CE-48D2-880B-E2C55311D069",
    "6bebeb9f98ce48d2880be2c55311d069",
    "{6bebeb9f-98ce-48d2-880b-e2c55311d069}",
    "5",
    "5.0",
    "true",
    "null",
    "order.placed",
    "NET_MODE",
    "GROSS_MODE",
]
NUMBERS = [0, -1, 1, 5, 99, 100, 101, 100.0, 100.5, -0.0, 1e-7, 19.99, 19.0, 10_000, 10_001, 10**7, 10**7 + 1]
NUMBERS += [2**63 - 1, 2**63, 2**64, 10**30, 5.0, 5.5, True, False, None]
OTHERS = [[], {}, {"x": 1}, [1], "x"]


def placed() -> dict:
    return json.loads(sample_order(4, run="W").model_dump_json())


def leaves(value: object, path: tuple = ()) -> list[tuple]:
    """Every path into `value` (dict keys and list indexes), leaves and containers alike."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += leaves(item, (*path, index))
    return found


def mutate(order: dict, rng: random.Random) -> dict:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        path = rng.choice(leaves(order))
        *parents, last = path
        target = order
        for part in parents:
            target = target[part]
        move = rng.random()
        if move < 0.08 and isinstance(target, dict):
            del target[last]
        elif move < 0.14 and isinstance(target, dict):
            target[rng.choice(["surprise", "Email", "sku "])] = 1
        else:
            pool = rng.choice([TEXTS, TEXTS, NUMBERS, OTHERS])
            target[last] = rng.choice(pool)
    return order


def contract(raw: bytes) -> dict | list:
    """What the contract makes of `raw`: the document, or its errors."""
    try:
        return document_validator(OrderPlaced).validate_json(raw)
    except ValidationError as exc:
        return [(error["loc"], error["type"], error["msg"]) for error in exc.errors()]


def as_dicts(document: object, order: dict | None = None) -> dict:
    """The structs as dicts; without the fields `order` lacks that a default factory made (a new id, now)."""
    made = msgspec.to_builtins(document, builtin_types=KEPT)
    return made if order is None else without_made(made, order)


def without_made(document: dict, order: dict) -> dict:
    return {key: value for key, value in document.items() if key in order or key not in ("event_id", "occurred_at")}


def written(order: dict, rng: random.Random) -> bytes:
    return json.dumps(order, ensure_ascii=rng.random() < 0.5).encode()


@pytest.mark.parametrize("seed", range(6))
def test_what_the_fast_path_accepts_is_what_the_contract_makes_of_it(seed):
    rng = random.Random(seed)
    decoder = document_decoder(OrderPlaced)
    accepted_fast = refused = 0
    for _ in range(400):
        order = mutate(placed(), rng)
        raw = written(order, rng)
        expected = contract(raw)
        if isinstance(expected, dict):
            expected = without_made(expected, order)
        fast = decoder.fast(raw)
        if fast is not None:
            accepted_fast += 1
            assert isinstance(expected, dict), f"fast path accepted what the contract refuses: {expected}\n{raw!r}"
            assert as_dicts(fast, order) == expected, raw
        try:
            document = decoder.decode_json(raw)
        except ValidationError as exc:
            refused += 1
            assert [(error["loc"], error["type"], error["msg"]) for error in exc.errors()] == expected, raw
        else:
            assert isinstance(expected, dict), raw
            assert as_dicts(document, order) == expected, raw
    assert accepted_fast > 40 and refused > 100  # both ways were really taken


def test_lines_that_repeat_a_shipment_share_one_struct_decoded_once():
    order = placed()  # its two lines are shipped together
    raw = json.dumps(order).encode()
    document = document_decoder(OrderPlaced).fast(raw)
    assert document is not None
    first, second = (line.shipment for line in document.lines)
    assert first is second
    assert as_dicts(document) == document_validator(OrderPlaced).validate_json(raw)
    # Another address for the second line: a struct of its own.
    order["lines"][1]["shipment"]["address"]["city"] = "Hamburg"
    raw = json.dumps(order).encode()
    document = document_decoder(OrderPlaced).fast(raw)
    assert document is not None and document.lines[1].shipment.address.city == "Hamburg"
    assert document.lines[0].shipment.address.city != "Hamburg"
    assert as_dicts(document) == document_validator(OrderPlaced).validate_json(raw)
    order["lines"][1]["shipment"]["address"]["city"] = order["lines"][0]["shipment"]["address"]["city"]
    # The same shipment written differently (keys in another order) is decoded on its own, to the same values.
    shipment = order["lines"][1]["shipment"]
    order["lines"][1]["shipment"] = dict(reversed(list(shipment.items())))
    raw = json.dumps(order).encode()
    document = document_decoder(OrderPlaced).fast(raw)
    assert document is not None and document.lines[0].shipment is not document.lines[1].shipment
    assert document.lines[0].shipment == document.lines[1].shipment
    assert as_dicts(document) == document_validator(OrderPlaced).validate_json(raw)


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        ("method.price", "x", ("lines", 1, "shipment", "method", "price")),
        ("address.country", "Germany", ("lines", 1, "shipment", "address", "country")),
        ("method.unknown", 1, ("lines", 1, "shipment", "method", "unknown")),
    ],
)
def test_a_shipment_refused_in_one_line_leaves_the_whole_order_to_the_contract(path, value, error):
    order = placed()
    target = order["lines"][1]["shipment"]
    *parents, last = path.split(".")
    for part in parents:
        target = target[part]
    target[last] = value
    raw = json.dumps(order).encode()
    assert document_decoder(OrderPlaced).fast(raw) is None
    with pytest.raises(ValidationError) as refused:
        document_decoder(OrderPlaced).decode_json(raw)
    assert [e["loc"] for e in refused.value.errors()] == [error]


def test_a_plain_order_takes_the_fast_path_written_either_way():
    order = placed()
    order["billing_address"]["address1"] = "Julie-Wolfthorn-Stra\u00dfe 1 \u00a9"
    for ensure_ascii in (True, False):
        raw = json.dumps(order, ensure_ascii=ensure_ascii).encode()
        document = document_decoder(OrderPlaced).fast(raw)
        assert document is not None
        assert as_dicts(document) == document_validator(OrderPlaced).validate_json(raw)
        assert document.billing_address.address1 == document["billing_address"]["address1"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda o: o["customer"].update(first_name="  Anna "), lambda d: d.customer.first_name == "Anna"),
        (
            lambda o: o.update(occurred_at="2026-12-03T11:00:00.9999999Z"),
            lambda d: d.occurred_at.microsecond == 999999,  # truncated, as the contract does, not rounded
        ),
        (lambda o: o["lines"][0].update(quantity="2"), lambda d: d.lines[0].quantity == 2),
    ],
    ids=["name to strip", "fraction past microseconds", "number as text"],
)
def test_what_only_the_contract_judges_is_decoded_as_the_contract_decodes_it(change, expected):
    order = placed()
    change(order)
    order["totals"]["subtotal"] = sum(line["unit_price"] * int(line["quantity"]) for line in order["lines"])
    raw = json.dumps(order).encode()
    decoder = document_decoder(OrderPlaced)
    assert decoder.fast(raw) is None
    document = decoder.decode_json(raw)
    assert expected(document)
    assert as_dicts(document) == document_validator(OrderPlaced).validate_json(raw)


def test_a_time_in_another_zone_takes_the_fast_path_into_utc_and_one_without_a_zone_is_refused():
    order = placed()
    order["occurred_at"] = "2026-12-03T12:00:00.5+01:00"
    raw = json.dumps(order).encode()
    document = document_decoder(OrderPlaced).fast(raw)
    assert document.occurred_at == datetime(2026, 12, 3, 11, 0, 0, 500000, tzinfo=UTC)
    assert document.occurred_at.tzinfo is UTC
    assert as_dicts(document) == document_validator(OrderPlaced).validate_json(raw)

    order["occurred_at"] = "2026-12-03T12:00:00"
    reason = decode(record(json.dumps(order).encode()), OrderPlaced, as_document=True)
    assert (
        reason
        == "does not match the order.placed contract: occurred_at: Value error, timestamps must carry a time zone"
    )


@pytest.mark.parametrize(
    "name", ["Anna\r\nBcc: x@example.com", "An\u0085na", "Anna\u007f", "Anna\u009b"], ids=["CRLF", "NEL", "DEL", "CSI"]
)
def test_control_characters_escaped_or_raw_are_refused_with_the_contracts_reason(name):
    order = placed()
    order["customer"]["first_name"] = name
    for ensure_ascii in (True, False):
        raw = json.dumps(order, ensure_ascii=ensure_ascii).encode()
        assert document_decoder(OrderPlaced).fast(raw) is None
        reason = decode(record(raw), OrderPlaced, as_document=True)
        assert reason.startswith("does not match the order.placed contract: customer.first_name: ")
        assert "control characters" in reason


def test_an_amount_beyond_64_bits_is_kept_as_the_contract_keeps_it():
    order = placed()
    order["totals"]["discount_total"] = 10**30
    raw = json.dumps(order).encode()
    document = decode(record(raw), OrderPlaced, as_document=True)
    assert document.totals.discount_total == 10**30
    assert encode_json(document.totals) == to_json(document_validator(OrderPlaced).validate_json(raw)["totals"])


def test_a_contract_the_structs_cannot_check_like_the_contract_is_not_given_a_fast_path():
    class Checked(Contract):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    class Open(BaseModel):  # unknown fields ignored, where the structs refuse them
        code: str

    with pytest.raises(Unsupported, match=r"Checked\.name"):
        DocumentDecoder(Checked)
    with pytest.raises(Unsupported, match="only models that refuse unknown fields"):
        DocumentDecoder(Open)


@pytest.mark.parametrize("pattern", [r"^.*$", r"^[^a]+$", r"^a[\S]b$", r"^\W$"])
def test_a_pattern_that_could_match_across_joined_values_is_not_joined(pattern):
    class Patterned(Contract):
        code: Annotated[str, StringConstraints(pattern=pattern)]

    with pytest.raises(Unsupported, match="could match across"):
        DocumentDecoder(Patterned)


@pytest.mark.parametrize(
    ("first", "second"), [("DE", "AT"), ("D E", "AT"), ("AT", "D E")], ids=["both valid", "bad first", "bad last"]
)
def test_a_key_given_twice_counts_once_as_for_the_contract(first, second):
    raw = json.dumps(placed()).replace('"store": "DE"', f'"store": "{first}", "store": "{second}"', 1).encode()
    expected = contract(raw)
    try:
        document = document_decoder(OrderPlaced).decode_json(raw)
    except ValidationError as exc:
        assert [(error["loc"], error["type"], error["msg"]) for error in exc.errors()] == expected
    else:
        assert as_dicts(document) == expected
        assert document.store == second


def test_a_service_subscribing_to_a_contract_the_structs_cannot_check_does_not_start():
    class Open(BaseModel):
        code: str

    consumer = EventConsumer(Settings(), "order_state", None, None, None)  # type: ignore[arg-type]  # only subscribes
    with pytest.raises(Unsupported, match="only models that refuse unknown fields"):
        consumer.subscribe("open.topic", Open, lambda uow, batch: None, as_documents=True)  # type: ignore[arg-type]
    assert consumer.topics == []
