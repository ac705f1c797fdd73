"""Items driven through Spryker-format processes on the real broker and database, by manual events,
facts from the other services, and refusals a back office sees."""

from __future__ import annotations

from services.runtime.embedded import wait_until
from tests.support import (
    TopicReader,
    item_states,
    new_order,
    oms,
    publish_orders,
    request_event,
    rows,
    wait_for_states,
)


async def test_default_process_happy_path_with_invoice_and_shipping_facts(settings, services, engine, servers):
    order = new_order(1)
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"payment pending"})

    # A back-office user pays the order from the command line.
    result = oms("order", "trigger", reference, "pay", env=servers.env)
    assert result.returncode == 0, result.stderr
    # pay -> paid, then the onEnter event `confirm` (command Oms/SendOrderConfirmation) -> confirmed; what the
    # command line prints is order_state's answer.
    first, last = sorted(await item_states(engine, reference))[::2]
    assert result.stdout.strip() == f"'pay' on {reference}: 3 items payment pending -> confirmed ({first}-{last})"
    await wait_for_states(engine, reference, {"confirmed"})
    log = await rows(
        engine,
        """SELECT command, error FROM order_state.transition_log l
                                JOIN order_state.sales_order o ON o.id = l.order_id
                                WHERE o.order_reference = :r ORDER BY l.id""",
        r=reference,
    )
    assert [row.command for row in log] == ["DummyPayment/Pay", "Oms/SendOrderConfirmation"]
    assert all(row.error is None for row in log)

    # The cancellation window closes (its timeout event, fired here on request): the Invoice subprocess
    # (prefix "Invoice") asks invoicing for the invoice, and the invoice.generated fact moves the items on.
    await request_event(settings, reference, "close cancellation window")
    await wait_for_states(engine, reference, {"Invoice - generated"})

    for event, state in (("ship", "shipped"), ("deliver", "delivered"), ("close", "closed")):
        await request_event(settings, reference, event)
        await wait_for_states(engine, reference, {state})

    async with TopicReader(settings, "item.state_changed") as reader:
        await reader.wait_for(lambda _: any(e["event"] == "close" for e in reader.events(reference)))
        published = reader.events(reference)
    path = [(change["from_state"], change["to_state"]) for event in published for change in event["changes"]]
    assert path == [
        ("new", "payment pending"),
        ("payment pending", "confirmed"),
        ("confirmed", "Invoice - requested"),
        ("Invoice - requested", "Invoice - generated"),
        ("Invoice - generated", "shipped"),
        ("shipped", "delivered"),
        ("delivered", "closed"),
    ]
    items = sorted(await item_states(engine, reference))
    ranges = published[0]["changes"][0]["item_id_ranges"]
    assert [i for first, last in ranges for i in range(first, last + 1)] == items
    assert all(event["custom_order_reference"] == order["custom_order_reference"] for event in published)

    async with TopicReader(settings, "invoice.generation_requested") as reader:
        await reader.wait_for(lambda _: reader.events(reference))
        ranges = reader.events(reference)[0]["item_id_ranges"]
        assert [i for first, last in ranges for i in range(first, last + 1)] == items

    page = oms("order", "show", reference, env=servers.env)
    assert page.returncode == 0, page.stderr
    assert "closed: 3 items" in page.stdout
    assert "payment pending" in page.stdout and "Invoice - generated" in page.stdout  # history


async def test_the_command_line_prints_what_moved_and_what_was_refused(settings, services, engine, servers):
    order = new_order(1)
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"payment pending"})
    first, second, third = sorted(await item_states(engine, reference))
    paid = oms("order", "trigger", reference, "pay", "--items", str(first), env=servers.env)
    assert paid.returncode == 0, paid.stderr

    # Partly possible: the two unpaid items move, the paid one is refused; both answers are printed.
    partly = oms("order", "trigger", reference, "pay", env=servers.env)
    assert partly.returncode == 1
    assert partly.stdout.strip() == f"'pay' on {reference}: 2 items payment pending -> confirmed ({second}-{third})"
    assert partly.stderr.startswith(
        f"error: 'pay' for all items of {reference} refused (not_possible): event 'pay' was refused for 1 of 3 items\n"
        f"  item {first} (confirmed): "
    ), partly.stderr

    unknown = oms("order", "trigger", reference, "fly", "--no-wait", env=servers.env)
    assert unknown.returncode == 0 and "refusals come as order.item_event_rejected" in unknown.stdout
    unknown = oms("order", "trigger", reference, "fly", env=servers.env)
    assert unknown.returncode == 1 and "refused (unknown_event): process OmsDefault01 has no event 'fly'" in (
        unknown.stderr
    )
    assert "Traceback" not in unknown.stderr
    assert set((await item_states(engine, reference)).values()) == {"confirmed"}


async def test_spryker_format_process_with_prefixed_subprocess_happy_and_cancellation_paths(settings, services, engine):
    happy = new_order(2, process_name="Prepayment01")
    cancelled = new_order(2, process_name="Prepayment01")
    await publish_orders(settings, [happy, cancelled])
    await wait_for_states(engine, happy["order_reference"], {"Payment - waiting"})
    await wait_for_states(engine, cancelled["order_reference"], {"Payment - waiting"})

    await request_event(settings, happy["order_reference"], "Payment - receive")
    # receive -> Payment - received -> (onEnter fulfil, command Warehouse/Allocate) -> picking
    await wait_for_states(engine, happy["order_reference"], {"picking"})
    for event, state in (("ship", "shipped"), ("deliver", "delivered")):
        await request_event(settings, happy["order_reference"], event)
        await wait_for_states(engine, happy["order_reference"], {state})

    await request_event(settings, cancelled["order_reference"], "cancel")
    await wait_for_states(engine, cancelled["order_reference"], {"cancelled"})
    history = await rows(
        engine,
        """SELECT DISTINCT h.from_state, h.to_state, h.event FROM order_state.item_state_history h
           JOIN order_state.sales_order_item i ON i.id = h.item_id JOIN order_state.sales_order o ON o.id = i.order_id
           WHERE o.order_reference = :r ORDER BY 1 NULLS FIRST""",
        r=cancelled["order_reference"],
    )
    assert [tuple(row) for row in history] == [
        (None, "new", None),
        ("Payment - waiting", "cancelled", "cancel"),
        ("new", "Payment - waiting", "start"),
    ]


async def test_refused_events_are_answered_and_change_nothing(settings, services, engine):
    order = new_order(3)
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    before = await wait_for_states(engine, reference, {"payment pending"})
    first, *_ = sorted(before)

    unknown_order = await request_event(settings, "DE--NO-SUCH-ORDER", "pay")
    unknown_event = await request_event(settings, reference, "teleport")
    not_possible = await request_event(settings, reference, "ship")
    foreign_item = await request_event(settings, reference, "pay", item_ids=[first, 999_999_999])
    unknown_shipment = await request_event(settings, reference, "pay", shipment_id=999_999_999)

    async with TopicReader(settings, "order.item_event_rejected") as reader:
        wanted = {r["event_id"] for r in (unknown_order, unknown_event, not_possible, foreign_item, unknown_shipment)}
        await reader.wait_for(lambda _: wanted <= {e["causation_id"] for e in reader.events()})
        answers = {e["causation_id"]: e for e in reader.events() if e["causation_id"] in wanted}

    assert answers[unknown_order["event_id"]]["reason"] == "unknown_order"
    assert "there is no order 'DE--NO-SUCH-ORDER'" in answers[unknown_order["event_id"]]["message"]
    assert answers[unknown_event["event_id"]]["reason"] == "unknown_event"
    assert "has no event 'teleport'" in answers[unknown_event["event_id"]]["message"]
    assert answers[unknown_shipment["event_id"]]["reason"] == "unknown_shipment"

    refusal = answers[not_possible["event_id"]]
    assert refusal["reason"] == "not_possible"
    assert {item["item_id"] for item in refusal["refused_items"]} == set(before)
    assert all(
        item["reason"] == 'item is in state "payment pending", which has no transition on event "ship"'
        and item["state"] == "payment pending"
        for item in refusal["refused_items"]
    )

    partial = answers[foreign_item["event_id"]]
    assert partial["refused_items"] == [
        {"item_id": 999_999_999, "state": None, "reason": "item 999999999 is not an item of this order"}
    ]
    # The chosen item that exists was paid (and confirmed); the others did not move.
    after = await wait_until(lambda: _moved(engine, reference, first))
    assert after[first] == "confirmed"
    assert {state for item, state in after.items() if item != first} == {"payment pending"}


async def _moved(engine, reference, item_id):
    states = await item_states(engine, reference)
    return states if states[item_id] != "payment pending" else None


async def test_events_can_be_triggered_for_one_shipment(settings, services, engine):
    order = new_order(3)  # two shipments: home (standard) and office (express)
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"payment pending"})
    shipments = await wait_until(lambda: _shipments_known(engine, reference), timeout=30)
    office = min(shipments, key=lambda shipment_id: len(shipments[shipment_id]))
    await request_event(settings, reference, "pay", shipment_id=office)
    states = await wait_until(lambda: _moved(engine, reference, shipments[office][0]))
    assert {item: state for item, state in states.items() if item in shipments[office]} == {
        item: "confirmed" for item in shipments[office]
    }
    assert {state for item, state in states.items() if item not in shipments[office]} == {"payment pending"}


async def _shipments_known(engine, reference):
    found = await rows(
        engine,
        """SELECT i.id, i.shipment_id FROM order_state.sales_order_item i JOIN order_state.sales_order o
           ON o.id = i.order_id WHERE o.order_reference = :r""",
        r=reference,
    )
    if not found or any(row.shipment_id is None for row in found):
        return None
    by_shipment: dict[int, list[int]] = {}
    for row in found:
        by_shipment.setdefault(row.shipment_id, []).append(row.id)
    return by_shipment if len(by_shipment) == 2 else None


async def test_an_order_for_an_unknown_process_is_dead_lettered_with_the_reason(settings, services, engine):
    order = new_order(1, process_name="NoSuchProcess01")
    await publish_orders(settings, [order])
    async with TopicReader(settings, "dlq.order_state") as reader:
        await reader.wait_for(lambda _: [r for r in reader.records if r.key == order["order_reference"].encode()])
        (dead,) = [r for r in reader.records if r.key == order["order_reference"].encode()]
    reason = dict(dead.headers)["dlq.reason"].decode()
    assert reason.startswith("unknown process 'NoSuchProcess01'; known: ")
    assert "OmsDefault01" in reason and "Prepayment01" in reason
    assert await item_states(engine, order["order_reference"]) == {}
