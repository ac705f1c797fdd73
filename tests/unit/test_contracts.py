"""The event contracts: what they accept, what they refuse and why, and the committed JSON Schemas."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from schemas import OrderPlaced
from schemas.export import SCHEMA_DIR, render_all
from services.samples import sample_order


def placed(**changes) -> dict:
    order = json.loads(sample_order(3, run="T1").model_dump_json())
    order.update(changes)
    return order


def test_committed_json_schemas_match_the_models():
    rendered = render_all()
    committed = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.schema.json")}
    assert set(committed) == set(rendered), "run `oms schemas export`"
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} drifted from its model; run `oms schemas export`"


def test_order_placed_contract_carries_what_a_real_checkout_sends():
    schema = json.loads((SCHEMA_DIR / "order.placed.schema.json").read_text())
    for field in (
        "store",
        "locale",
        "currency",
        "price_mode",
        "customer",
        "billing_address",
        "custom_order_reference",
        "process_name",
        "payment_method",
        "lines",
        "totals",
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "order_reference",
        "correlation_id",
        "causation_id",
    ):
        assert field in schema["properties"], field
    line = schema["$defs"]["PlacedLine"]["properties"]
    assert {"sku", "name", "quantity", "unit_price", "tax_rate", "is_quantity_splittable", "shipment"} <= set(line)
    shipment = schema["$defs"]["Shipment"]["properties"]
    assert {"address", "method", "requested_delivery_date"} <= set(shipment)
    assert "price" in schema["$defs"]["ShipmentMethod"]["properties"]


def test_sample_order_round_trips():
    order = sample_order(3, run="T2")
    assert OrderPlaced.model_validate_json(order.model_dump_json()) == order


def test_money_is_integer_minor_units():
    with pytest.raises(ValidationError, match="unit_price"):
        lines = placed()["lines"]
        lines[0]["unit_price"] = 19.99
        OrderPlaced.model_validate(placed(lines=lines))


def test_subtotal_must_match_the_lines():
    order = placed()
    order["totals"]["subtotal"] += 1
    with pytest.raises(ValidationError, match="lines add up to"):
        OrderPlaced.model_validate(order)


@pytest.mark.parametrize("value", ["PO\n42", "PO\x0042", "x" * 256])
def test_custom_order_reference_refuses_control_characters_and_length(value):
    with pytest.raises(ValidationError, match="custom_order_reference"):
        OrderPlaced.model_validate(placed(custom_order_reference=value))


def test_custom_order_reference_counts_characters_not_bytes():
    order = OrderPlaced.model_validate(placed(custom_order_reference="ü" * 255))
    assert len(order.custom_order_reference) == 255


def test_unknown_fields_and_wrong_event_type_are_refused():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        OrderPlaced.model_validate(placed(surprise=1))
    with pytest.raises(ValidationError, match="event_type"):
        OrderPlaced.model_validate(placed(event_type="order.created"))


def test_timestamps_need_a_time_zone():
    with pytest.raises(ValidationError, match="time zone"):
        OrderPlaced.model_validate(placed(occurred_at="2026-11-23T10:00:00"))


def test_committed_asyncapi_document_matches_the_services(monkeypatch):
    from schemas.registry import EVENT_MODELS
    from services.runtime.asyncapi import ASYNCAPI_FILE, render

    monkeypatch.setenv("OMS_KAFKA_GROUP_PREFIX", "elsewhere")  # the committed document shows the defaults
    rendered = render()
    assert ASYNCAPI_FILE.read_text() == rendered, "schemas/asyncapi.json drifted; run `oms schemas export`"
    document = json.loads(rendered)
    assert document["asyncapi"] == "3.0.0"
    channels = document["channels"]
    # Every contract has a channel: consumed by a service, published by one, or both.
    topics = {channel["address"] for channel in channels.values()}
    assert set(EVENT_MODELS) <= topics
    assert {"dlq.order_state", "dlq.invoicing", "dlq.shipping"} <= topics
    # Every fact (not a request from checkout or the back office) is declared by the service that publishes it.
    published = {channel["address"] for name, channel in channels.items() if ":publishes:" in name}
    facts = {topic for topic in EVENT_MODELS if topic != "order.placed" and not topic.endswith("_requested")}
    assert facts <= published, f"facts no service declares it publishes: {sorted(facts - published)}"
    # Subscriptions name their consumer group and carry the contract as payload.
    placed = document["operations"]["order_state:order.placed"]
    assert placed["action"] == "receive"
    assert "in consumer group oms.order_state." in channels["order_state:order.placed"]["description"]
    message = document["components"]["messages"]["order_state:order.placed:SubscribeMessage"]
    assert message["payload"] == {"$ref": "#/components/schemas/OrderPlaced"}
    assert "custom_order_reference" in document["components"]["schemas"]["OrderCreated"]["properties"]
    created = document["operations"]["order_state:publishes:order.created"]
    assert created["action"] == "send"
