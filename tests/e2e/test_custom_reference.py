"""The custom order reference an ERP relies on: set at placement, changed or cleared by the back office
only, carried on every event an ERP consumes."""

from __future__ import annotations

import json
import uuid

from services.runtime.embedded import wait_until
from tests.support import (
    TopicReader,
    new_order,
    oms,
    publish_orders,
    publish_raw,
    request_event,
    request_split,
    rows,
    shipments_of,
    wait_for_states,
)


async def request_update(settings, reference: str, value, role: str = "back_office") -> dict:
    request = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.custom_reference_update_requested",
        "occurred_at": "2026-11-23T10:00:00Z",
        "order_reference": reference,
        "value": value,
        "requested_by_role": role,
    }
    await publish_raw(settings, request["event_type"], [(reference.encode(), json.dumps(request).encode())])
    return request


async def answer(settings, topic: str, request: dict) -> dict:
    async with TopicReader(settings, topic) as reader:
        await reader.wait_for(lambda _: [e for e in reader.events() if e["causation_id"] == request["event_id"]])
        (found,) = [e for e in reader.events() if e["causation_id"] == request["event_id"]]
        return found


async def test_back_office_changes_the_reference_and_every_later_event_carries_it(settings, services, engine, servers):
    order = new_order(3, custom_order_reference="PO-OLD-1")
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"payment pending"})
    shipments = await wait_until(lambda: _two(engine, reference))

    result = oms("order", "set-reference", reference, "PO-NEW-ÄÖÜ-2", "--requested-by", "erp-sync", env=servers.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"custom reference of {reference}: 'PO-OLD-1' -> 'PO-NEW-ÄÖÜ-2'"
    refused = oms("order", "set-reference", reference, "PO\x07BELL", env=servers.env)
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "refused (control_characters): a custom order reference must not contain control characters" in (
        refused.stderr
    )
    async with TopicReader(settings, "order.custom_reference_changed") as reader:
        await reader.wait_for(lambda _: reader.events(reference))
        (changed,) = reader.events(reference)
    assert (changed["old_value"], changed["new_value"], changed["requested_by"]) == (
        "PO-OLD-1",
        "PO-NEW-ÄÖÜ-2",
        "erp-sync",
    )
    assert changed["custom_order_reference"] == "PO-NEW-ÄÖÜ-2"

    await wait_until(lambda: _invoice_reference_is(engine, reference, "PO-NEW-ÄÖÜ-2"))
    await request_event(settings, reference, "pay")
    await wait_for_states(engine, reference, {"confirmed"})
    async with TopicReader(settings, "item.state_changed") as reader:
        await reader.wait_for(lambda _: any(e["event"] == "pay" for e in reader.events(reference)))
        paid = [e for e in reader.events(reference) if e["event"] == "pay"]
    assert paid[0]["custom_order_reference"] == "PO-NEW-ÄÖÜ-2"

    home, office = sorted(shipments, key=lambda s: -len(shipments[s]["items"]))
    split = await request_split(settings, reference, shipments[office]["items"], target_shipment_id=home)
    moved = await answer(settings, "shipment.split", split)
    assert moved["custom_order_reference"] == "PO-NEW-ÄÖÜ-2"

    cleared = oms("order", "set-reference", reference, "--clear", env=servers.env)
    assert cleared.returncode == 0, cleared.stderr
    async with TopicReader(settings, "order.custom_reference_changed") as reader:
        await reader.wait_for(lambda _: len(reader.events(reference)) == 2)
        assert reader.events(reference)[1]["new_value"] is None
    stored = await rows(
        engine, "SELECT custom_order_reference FROM order_state.sales_order WHERE order_reference = :r", r=reference
    )
    assert stored[0].custom_order_reference is None


async def _two(engine, reference):
    found = await shipments_of(engine, reference)
    return found if len(found) == 2 else None


async def _invoice_reference_is(engine, reference, value):
    found = await rows(
        engine, "SELECT custom_order_reference FROM invoicing.invoice WHERE order_reference = :r", r=reference
    )
    return found and found[0].custom_order_reference == value


async def test_invalid_values_and_customers_are_refused_with_the_rule(settings, services, engine):
    order = new_order(1, custom_order_reference="PO-KEEP")
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"payment pending"})

    cases = [
        (
            await request_update(settings, reference, "x" * 256),
            "too_long",
            "a custom order reference has at most 255 characters, this one has 256",
        ),
        (
            await request_update(settings, reference, "PO\n42"),
            "control_characters",
            "a custom order reference must not contain control characters (found '\\n' at position 2)",
        ),
        (
            await request_update(settings, reference, "   "),
            "empty",
            "a custom order reference cannot be empty; clear it instead",
        ),
        (
            await request_update(settings, reference, "PO-CUSTOMER", role="customer"),
            "back_office_only",
            "only the back office may change a custom order reference",
        ),
        (await request_update(settings, "DE--NOPE", "PO-1"), "unknown_order", "there is no order 'DE--NOPE'"),
    ]
    for request, reason, message in cases:
        rejection = await answer(settings, "order.custom_reference_update_rejected", request)
        assert (rejection["reason"], rejection["message"]) == (reason, message)
    allowed = await request_update(settings, reference, "ü" * 255)  # characters, not bytes
    changed = await answer(settings, "order.custom_reference_changed", allowed)
    assert changed["old_value"] == "PO-KEEP" and changed["new_value"] == "ü" * 255
