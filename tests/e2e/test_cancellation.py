"""Order cancellation by customers (whole order, in the window, own order, cancellable states) and the
back office (order, shipment or items, whenever the states allow), on the real broker and database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from services.runtime.embedded import wait_until
from tests.support import (
    TopicReader,
    item_states,
    new_order,
    oms,
    publish_orders,
    publish_raw,
    request_event,
    settle,
    shipments_of,
    wait_for_states,
)


async def request_cancel(settings, reference: str, role: str, **fields) -> dict:
    request = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.cancel_requested",
        "occurred_at": datetime.now(UTC).isoformat(),
        "order_reference": reference,
        "requested_by_role": role,
        **fields,
    }
    await publish_raw(settings, request["event_type"], [(reference.encode(), json.dumps(request).encode())])
    return request


async def answers(settings, topic: str, request: dict) -> list[dict]:
    async with TopicReader(settings, topic) as reader:
        await reader.wait_for(lambda _: [e for e in reader.events() if e["causation_id"] == request["event_id"]])
        return [e for e in reader.events() if e["causation_id"] == request["event_id"]]


async def test_a_customer_cancels_their_whole_order_in_the_window(settings, services, engine, servers):
    order = new_order(3)
    reference, customer = order["order_reference"], order["customer"]["customer_reference"]
    await publish_orders(settings, [order])
    items = await wait_for_states(engine, reference, {"payment pending"})
    shipments = await wait_until(lambda: _count(engine, reference, 2))

    result = oms(
        "order", "cancel", reference, "--as-customer", customer, "--reason", "changed my mind", env=servers.env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"cancelled {len(items)} items of {reference}, the whole order: "), result.stdout
    await wait_for_states(engine, reference, {"cancelled"})
    async with TopicReader(settings, "order.canceled") as reader:
        await reader.wait_for(lambda _: reader.events(reference))
        (canceled,) = reader.events(reference)
    assert canceled["whole_order"] is True
    assert canceled["requested_by_role"] == "customer" and canceled["reason"] == "changed my mind"
    assert [i for a, b in canceled["item_id_ranges"] for i in range(a, b + 1)] == sorted(items)
    assert canceled["custom_order_reference"] == order["custom_order_reference"]
    # shipping follows: every shipment of the order is canceled
    await wait_until(lambda: _statuses(engine, reference, {"canceled"}))
    assert len(shipments) == 2


async def _count(engine, reference, count):
    found = await shipments_of(engine, reference)
    return found if len(found) == count else None


async def _statuses(engine, reference, wanted):
    found = await shipments_of(engine, reference)
    return found and {s["status"] for s in found.values()} == wanted


async def test_customer_refusals(settings, services, engine):
    late = new_order(1, placed_at=(datetime.now(UTC) - timedelta(minutes=31)).isoformat())
    mine = new_order(3)
    progressed = new_order(1)
    await publish_orders(settings, [late, mine, progressed])
    for order in (late, mine, progressed):
        await wait_for_states(engine, order["order_reference"], {"payment pending"})
    # `progressed` leaves the cancellable states: paid, confirmed, then past the cancellation window.
    await request_event(settings, progressed["order_reference"], "pay")
    await wait_for_states(engine, progressed["order_reference"], {"confirmed"})
    await request_event(settings, progressed["order_reference"], "close cancellation window")
    await wait_for_states(engine, progressed["order_reference"], {"Invoice - requested", "Invoice - generated"})

    def customer_of(order):
        return order["customer"]["customer_reference"]

    cases = [
        (
            await request_cancel(settings, late["order_reference"], "customer", customer_reference=customer_of(late)),
            "window_expired",
        ),
        (
            await request_cancel(settings, mine["order_reference"], "customer", customer_reference="DE--SOMEONE-ELSE"),
            "not_your_order",
        ),
        (
            await request_cancel(
                settings, mine["order_reference"], "customer", customer_reference=customer_of(mine), item_ids=[1]
            ),
            "whole_order_only",
        ),
        (
            await request_cancel(
                settings, progressed["order_reference"], "customer", customer_reference=customer_of(progressed)
            ),
            "not_cancellable_state",
        ),
        (await request_cancel(settings, "DE--NOPE", "customer", customer_reference="X"), "unknown_order"),
    ]
    for request, reason in cases:
        (rejection,) = await answers(settings, "order.cancel_rejected", request)
        assert rejection["reason"] == reason, rejection
    (late_rejection,) = await answers(settings, "order.cancel_rejected", cases[0][0])
    assert late_rejection["message"].startswith(
        f"a customer can cancel within 30 minutes of placement; order {late['order_reference']} was placed at "
    )
    (stuck,) = await answers(settings, "order.cancel_rejected", cases[3][0])
    assert {item["reason"] for item in stuck["refused_items"]} <= {
        'state "Invoice - requested" is not cancellable',
        'state "Invoice - generated" is not cancellable',
    }
    await settle()
    for order in (late, mine):
        assert set((await item_states(engine, order["order_reference"])).values()) == {"payment pending"}


async def test_the_back_office_cancels_items_or_a_shipment_and_a_repeat_changes_nothing(settings, services, engine):
    order = new_order(3)  # home: 3 items, office: 1 item
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"payment pending"})
    shipments = await wait_until(lambda: _assigned(engine, reference))
    home, office = sorted(shipments, key=lambda s: -len(shipments[s]))
    one = shipments[home][0]

    request = await request_cancel(settings, reference, "back_office", item_ids=[one], reason="out of stock")
    await publish_raw(settings, "order.cancel_requested", [(reference.encode(), json.dumps(request).encode())])
    (canceled,) = await answers(settings, "order.canceled", request)
    assert canceled["item_id_ranges"] == [[one, one]] and canceled["whole_order"] is False
    states = await item_states(engine, reference)
    assert states[one] == "cancelled"
    assert {state for item, state in states.items() if item != one} == {"payment pending"}

    by_shipment = await request_cancel(settings, reference, "back_office", shipment_id=office)
    await answers(settings, "order.canceled", by_shipment)
    states = await item_states(engine, reference)
    assert [states[item] for item in shipments[office]] == ["cancelled"]

    again = await request_cancel(settings, reference, "back_office", item_ids=[one, shipments[home][1]])
    (refused,) = await answers(settings, "order.cancel_rejected", again)
    assert refused["reason"] == "not_cancellable_state"
    assert [(r["item_id"], r["state"]) for r in refused["refused_items"]] == [(one, "cancelled")]
    assert (await item_states(engine, reference))[shipments[home][1]] == "payment pending"  # all or nothing

    unknown = await request_cancel(settings, reference, "back_office", item_ids=[999_999_999])
    (rejection,) = await answers(settings, "order.cancel_rejected", unknown)
    assert rejection["reason"] == "unknown_items"
    await settle()
    async with TopicReader(settings, "order.canceled") as reader:
        await reader.wait_for(lambda _: len(reader.events(reference)) >= 2)
        assert len(reader.events(reference)) == 2  # the request delivered twice canceled once


async def test_the_cli_prints_the_answer_and_exits_by_it(settings, services, engine, servers):
    order = new_order(3)  # home: 3 items, office: 1 item
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"payment pending"})
    shipments = await wait_until(lambda: _assigned(engine, reference))
    home = max(shipments, key=lambda s: len(shipments[s]))
    first, second = sorted(shipments[home])[:2]

    refused = oms("order", "cancel", reference, "--as-customer", "NOBODY", env=servers.env)
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert f"cancelling whole order of {reference} as customer NOBODY refused (not_your_order): " in refused.stderr
    assert "Traceback" not in refused.stderr

    # Another request's answer waits on the same partition of order.cancel_rejected: the CLI reads past it.
    other = await request_cancel(settings, reference, "back_office", item_ids=[999_999_999])
    await answers(settings, "order.cancel_rejected", other)
    done = oms("order", "cancel", reference, "--items", f"{first},{second}", "--reason", "damaged", env=servers.env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    ids = f"{first}-{second}" if second == first + 1 else f"{first}, {second}"
    assert done.stdout.strip() == f"cancelled 2 items of {reference}: {ids}"
    states = await item_states(engine, reference)
    assert {states[first], states[second]} == {"cancelled"}

    unknown = oms("order", "cancel", reference, "--items", "999999999", env=servers.env)
    assert unknown.returncode == 1
    assert "refused (unknown_items)" in unknown.stderr and "item 999999999 (not in the order)" in unknown.stderr

    bad = oms("order", "cancel", reference, "--items", f"{first},x", env=servers.env)
    assert bad.returncode == 2 and "--items 'x' is not an item id" in bad.stderr

    queued = oms("order", "cancel", reference, "--items", str(first), "--no-wait", env=servers.env)
    assert queued.returncode == 0 and "the answer is order.canceled or order.cancel_rejected" in queued.stdout
    assert [states[item] for item in shipments[home] if item not in (first, second)] == ["payment pending"]


async def test_waiting_for_an_answer_that_does_not_come_ends_at_the_timeout(settings, services):
    from schemas import OrderCancelRequested, ShipmentSplitRejected
    from services.runtime.cli_support import publish_and_wait

    request = OrderCancelRequested(order_reference="DE--NO-SUCH-ORDER", requested_by_role="back_office")
    # order_state answers on order.cancel_rejected; nothing answers it on shipment.split_rejected.
    assert await publish_and_wait(settings, request, (ShipmentSplitRejected,), timeout=1.5) == []
    (rejection,) = await answers(settings, "order.cancel_rejected", {"event_id": str(request.event_id)})
    assert rejection["reason"] == "unknown_order"


async def test_an_answer_that_does_not_match_its_contract_is_a_clear_error(settings, services):
    import asyncio

    import pytest

    from schemas import OrderCanceled, OrderCancelRequested
    from services.runtime.cli_support import CliError, publish_and_wait

    reference = "DE--ANSWER-FROM-THE-FUTURE"
    request = OrderCancelRequested(order_reference=reference, requested_by_role="back_office")
    odd = {"event_id": str(uuid.uuid4()), "event_type": "order.canceled", "order_reference": reference}
    odd |= {"causation_id": str(request.event_id), "schema_version": 2, "item_ids": "all"}

    async def answer_oddly() -> None:
        await asyncio.sleep(1)
        await publish_raw(settings, "order.canceled", [(reference.encode(), json.dumps(odd).encode())])

    answering = asyncio.create_task(answer_oddly())
    with pytest.raises(CliError, match=r"the answer on order.canceled does not match its contract .*item_id_ranges"):
        await publish_and_wait(settings, request, (OrderCanceled,), timeout=15)
    await answering


async def _assigned(engine, reference):
    found = await shipments_of(engine, reference)
    if len(found) != 2:
        return None
    return {shipment_id: shipment["items"] for shipment_id, shipment in found.items()}


async def test_an_invoice_not_yet_mailed_is_not_sent_for_a_canceled_order(settings, services, engine, servers):
    from tests.support import mails_to, rows

    order = new_order(1)
    reference, email = order["order_reference"], order["customer"]["email"]
    servers.sink.stop()
    try:
        await publish_orders(settings, [order])
        await wait_for_states(engine, reference, {"payment pending"})
        request = await request_cancel(settings, reference, "back_office", reason="fraud suspected")
        await answers(settings, "order.canceled", request)

        async def stopped():
            found = await rows(
                engine,
                """SELECT e.status, e.last_error FROM invoicing.invoice_email e
                                          JOIN invoicing.invoice i ON i.id = e.invoice_id
                                          WHERE i.order_reference = :r""",
                r=reference,
            )
            return found if found and found[0].status == "canceled" else None

        (delivery,) = await wait_until(stopped, timeout=30)
        assert delivery.last_error == "not sent: the order was canceled before the e-mail went out"
    finally:
        servers.sink.start()
    await settle(3)
    assert mails_to(servers.sink, email) == []


async def test_an_invoice_already_mailed_is_cancelled_by_a_credit_note(settings, services, engine, servers):
    from tests.support import mails_to, rows

    store = "C" + uuid.uuid4().hex[:6].upper()
    order = new_order(2, store=store)  # en_US
    reference, email = order["order_reference"], order["customer"]["email"]
    await publish_orders(settings, [order])
    (invoice_mail,) = await wait_until(lambda: mails_to(servers.sink, email), timeout=30)
    await wait_for_states(engine, reference, {"payment pending"})

    request = await request_cancel(settings, reference, "back_office", reason="customer called")
    (canceled,) = await answers(settings, "order.canceled", request)
    async with TopicReader(settings, "invoice.credit_note_issued") as reader:
        await reader.wait_for(lambda _: reader.events(reference))
        (issued,) = reader.events(reference)
    assert issued["causation_id"] == canceled["event_id"]
    invoice = (await rows(engine, "SELECT * FROM invoicing.invoice WHERE order_reference = :r", r=reference))[0]
    assert issued["credit_note_reference"] == f"{store}-CN-000001"
    assert issued["invoice_reference"] == invoice.invoice_reference == f"{store}-INV-000001"
    assert issued["grand_total"] == -invoice.grand_total < 0
    assert issued["reason"] == "customer called"

    def two_mails():
        found = mails_to(servers.sink, email)
        return found if len(found) == 2 else None

    credit_mail = (await wait_until(two_mails, timeout=30))[1]
    assert credit_mail.message["Subject"].startswith(f"Credit note {store}-CN-000001 for your order {reference}")
    text = credit_mail.message.get_body(("plain",)).get_content()
    assert f"Cancels invoice:             {invoice.invoice_reference}" in text
    assert "-€" in text  # negative amounts
    assert invoice_mail.message["Subject"].startswith(f"Invoice {invoice.invoice_reference}")


async def test_an_order_canceled_before_invoicing_heard_of_it_is_never_invoiced(settings, services, engine, servers):
    """order.canceled and order.created reach invoicing through different topics: the cancellation can come
    first. Here it does, on purpose; the order that follows is not invoiced and nobody gets an e-mail."""
    from tests.support import mails_to, rows, scalar

    order = new_order(1)
    reference, email = order["order_reference"], order["customer"]["email"]
    canceled = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.canceled",
        "occurred_at": datetime.now(UTC).isoformat(),
        "order_reference": reference,
        "requested_by_role": "back_office",
        "reason": "fraud suspected",
        "item_id_ranges": [[1, 1]],
        "whole_order": True,
    }
    await publish_raw(settings, "order.canceled", [(reference.encode(), json.dumps(canceled).encode())])
    await wait_until(
        lambda: scalar(engine, "SELECT 1 FROM invoicing.canceled_order WHERE order_reference = :r", r=reference)
    )

    await publish_orders(settings, [order])
    await wait_until(
        lambda: scalar(engine, "SELECT 1 FROM invoicing.order_snapshot WHERE order_reference = :r", r=reference)
    )
    await settle(2)
    assert await rows(engine, "SELECT 1 FROM invoicing.invoice WHERE order_reference = :r", r=reference) == []
    assert mails_to(servers.sink, email) == []
