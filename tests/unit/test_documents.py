"""Documents: order.placed validated into dicts must be checked exactly as the OrderPlaced model checks it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError, model_validator

from schemas import OrderCreated, OrderPlaced
from schemas.envelope import Contract, caused_by, new_event_id
from services.order_state.domain.splitting import ItemSplit
from services.order_state.handlers import lines_json, order_created_json
from services.runtime.consumer import decode
from services.runtime.documents import MissingDocumentCheck, document_validator
from services.runtime.json_codec import encode_json
from services.runtime.wire import document_decoder
from services.samples import sample_order
from tests.unit.test_runtime import record


def placed() -> dict:
    return json.loads(sample_order(3, run="D1").model_dump_json())


def change(path: str, value: object) -> Callable[[dict], None]:
    def apply(order: dict) -> None:
        *parents, last = path.split(".")
        target = order
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is KeyError:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return apply


def subtotal_off_by_one(order: dict) -> None:
    order["totals"]["subtotal"] += 1


VALID = {
    "as sent": [],
    "optional fields absent": [change("custom_order_reference", KeyError), change("placed_at", KeyError)],
    "custom reference of 255 characters": [change("custom_order_reference", "ü" * 255)],
    "process and address e-mail given": [
        change("process_name", "OmsDefault01"),
        change("billing_address.email", "billing@example.com"),
    ],
}

INVALID = {
    "float money": [change("lines.0.unit_price", 19.99)],
    "subtotal does not add up": [subtotal_off_by_one],
    "control character in a name": [change("customer.first_name", "Anna\r\nBcc: x@example.com")],
    "custom reference too long": [change("custom_order_reference", "x" * 256)],
    "unknown field, deep": [change("lines.0.shipment.method.surprise", 1)],
    "unknown field, top": [change("surprise", 1)],
    "wrong event type": [change("event_type", "order.created")],
    "timestamp without zone": [change("occurred_at", "2026-11-23T10:00:00")],
    "not an e-mail address": [change("customer.email", "anna at example.com")],
    "missing line field": [change("lines.1.sku", KeyError)],
    "no lines": [change("lines", [])],
    "quantity zero": [change("lines.0.quantity", 0)],
    "bad currency": [change("currency", "euro")],
}


def placed_with(changes: list[Callable[[dict], None]]) -> str:
    order = placed()
    for apply in changes:
        apply(order)
    return json.dumps(order)


@pytest.mark.parametrize("name", VALID)
def test_a_valid_order_becomes_the_same_data_as_a_model_would(name):
    raw = placed_with(VALID[name])
    assert document_validator(OrderPlaced).validate_json(raw) == OrderPlaced.model_validate_json(raw).model_dump()


@pytest.mark.parametrize("name", INVALID)
def test_an_invalid_order_is_refused_with_the_same_errors_as_the_model_gives(name):
    raw = placed_with(INVALID[name])
    with pytest.raises(ValidationError) as by_model:
        OrderPlaced.model_validate_json(raw)
    with pytest.raises(ValidationError) as by_document:
        document_validator(OrderPlaced).validate_json(raw)
    as_seen = [(error["loc"], error["type"], error["msg"]) for error in by_model.value.errors()]
    assert [(error["loc"], error["type"], error["msg"]) for error in by_document.value.errors()] == as_seen
    assert decode(record(raw.encode()), OrderPlaced) == decode(record(raw.encode()), OrderPlaced, as_document=True)


def test_a_model_rule_without_a_document_twin_cannot_be_skipped_silently():
    class Guarded(Contract):
        low: int
        high: int

        @model_validator(mode="after")
        def _ordered(self) -> Guarded:
            if self.low > self.high:
                raise ValueError("low above high")
            return self

    with pytest.raises(MissingDocumentCheck, match="Guarded has a model validator"):
        document_validator(Guarded)


@pytest.mark.parametrize(
    "address",
    ["anna.schmidt@example.com", "o'brien+orders@mail.example.co.uk", "müller@bücher.example"],
)
def test_e_mail_addresses_a_checkout_sends_are_accepted(address):
    order = placed()
    order["customer"]["email"] = address
    assert document_validator(OrderPlaced).validate_python(copy.deepcopy(order))["customer"]["email"] == address


@pytest.mark.parametrize(
    "address",
    ["anna", "anna@localhost", "anna schmidt@example.com", "anna@example.com\r\nBcc: x@example.com", "@example.com"],
)
def test_what_cannot_be_an_e_mail_address_is_dead_lettered_with_a_clear_reason(address):
    order = placed()
    order["customer"]["email"] = address
    reason = decode(record(json.dumps(order).encode()), OrderPlaced, as_document=True)
    assert reason == (
        f"does not match the order.placed contract: customer.email: {address!r} is not an e-mail address "
        "(name@domain, no spaces or control characters)"
    )


@pytest.mark.parametrize("path", ["fast", "contract"])
def test_order_created_written_from_a_document_is_exactly_the_contract(path):
    sent = placed()
    sent["lines"][1]["shipment"]["address"]["city"] = "Hamburg"  # two shipments among the lines
    sent["lines"][2]["shipment"] = copy.deepcopy(sent["lines"][0]["shipment"])
    decoder = document_decoder(OrderPlaced)
    if path == "fast":  # lines 1 and 3 share one shipment struct, written once (services.runtime.wire)
        document = decoder.fast(json.dumps(sent).encode())
        assert document is not None and document.lines[0].shipment is document.lines[2].shipment
    else:  # the contract's validator: a struct for each line's shipment
        document = decoder.validate_python(copy.deepcopy(sent))
        assert document.lines[0].shipment is not document.lines[2].shipment
    splits = [ItemSplit(line.quantity, 1) for line in document.lines]
    ids, first = [], 101
    for split in splits:
        ids.append(list(range(first, first + split.count)))
        first += split.count + 10  # a gap, so ranges are not one run
    now = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    event_id = new_event_id()
    parts = {name: encode_json(document[name]) for name in ("customer", "billing_address", "totals")}
    parts["lines"], kept_lines, kept_shipments = lines_json(document, splits, ids)
    value = order_created_json(document, event_id, caused_by(document), "OmsDefault01", now, parts)

    created = OrderCreated.model_validate_json(value)  # refuses unknown or missing fields
    order = OrderPlaced.model_validate(sent)
    assert created.event_id == event_id and created.occurred_at == now
    assert (created.correlation_id, created.causation_id) == (order.event_id, order.event_id)
    assert (created.customer, created.billing_address, created.totals) == (
        order.customer,
        order.billing_address,
        order.totals,
    )
    assert [line.shipment for line in created.lines] == [line.shipment for line in order.lines]
    assert created.lines[1].shipment.address.city == "Hamburg" != created.lines[0].shipment.address.city
    assert created.lines[2].shipment == created.lines[0].shipment
    assert [line.item_ids for line in created.lines] == ids
    assert [(line.line_number, line.sku, line.quantity, line.item_count) for line in created.lines] == [
        (number, line.sku, line.quantity, line.quantity) for number, line in enumerate(order.lines, start=1)
    ]
    assert created.placed_at == (order.placed_at or order.occurred_at) and created.initial_state == "new"

    # The order row keeps each distinct shipment once, and the lines point at theirs: with the shipment put
    # back, each kept line is the line order.created carries.
    shipments = json.loads(kept_shipments)
    assert len(shipments) == 2 and shipments[0]["address"]["city"] != "Hamburg" == shipments[1]["address"]["city"]
    kept = json.loads(kept_lines)
    assert [line["shipment"] for line in kept] == [0, 1] + [0] * (len(kept) - 2)
    assert [{**line, "shipment": shipments[line["shipment"]]} for line in kept] == json.loads(value)["lines"]
