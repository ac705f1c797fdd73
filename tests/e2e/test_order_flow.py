"""A placed order, end to end, on the real broker and database with the services as processes."""

from __future__ import annotations

import json

from services.runtime.embedded import wait_until
from tests.support import BCC, TopicReader, expand, mails_to, new_order, publish_orders, rows, scalar, settle


def three_address_order() -> dict:
    order = new_order(3)
    home = order["lines"][0]["shipment"]
    # Same address as the first line, but in other case and with stray spaces: the same shipment.
    shouting = json.loads(json.dumps(home))
    shouting["address"]["city"] = "  BERLIN "
    shouting["address"]["address1"] = home["address"]["address1"].upper()
    order["lines"][1]["shipment"] = shouting
    # A third address, standard method, no date.
    other = json.loads(json.dumps(home))
    other["address"].update(address1="Karl-Marx-Allee 90", zip_code="10243")
    line = dict(order["lines"][0], sku="SKU-MUG", name="Mug", quantity=4, unit_price=899, shipment=other)
    order["lines"].append(line)
    order["totals"]["subtotal"] = sum(item["unit_price"] * item["quantity"] for item in order["lines"])
    return order


async def test_placed_order_is_stored_invoiced_mailed_and_shipped(settings, services, engine, servers):
    order = three_address_order()
    reference = order["order_reference"]
    email = order["customer"]["email"]

    await publish_orders(settings, [order])

    # order_state: the order and its items; a splittable line of 2 became 2 items, the non-splittable
    # pallet line of 3 one item of quantity 3. Created in `new`, the default process's onEnter event
    # `authorize` took them on to `payment pending` at once.
    await wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM order_state.sales_order WHERE order_reference = :r", r=reference),
        timeout=30,
    )
    items = await rows(
        engine,
        """SELECT i.id, i.line_number, i.quantity, i.state FROM order_state.sales_order_item i
           JOIN order_state.sales_order o ON o.id = i.order_id WHERE o.order_reference = :r ORDER BY i.id""",
        r=reference,
    )
    by_line = {}
    for item in items:
        by_line.setdefault(item.line_number, []).append(item.quantity)
    assert by_line == {1: [1, 1], 2: [3], 3: [1], 4: [1, 1, 1, 1]}
    assert {item.state for item in items} == {"payment pending"}
    history = await rows(
        engine,
        """SELECT h.from_state, h.to_state, h.event FROM order_state.item_state_history h
           WHERE h.item_id = :item ORDER BY h.change_id""",
        item=items[0].id,
    )
    assert [tuple(row) for row in history] == [(None, "new", None), ("new", "payment pending", "authorize")]

    # order.created carries the item ids per line.
    async with TopicReader(settings, "order.created") as reader:
        await reader.wait_for(lambda _: reader.events(reference))
        created = reader.events(reference)
    assert len(created) == 1
    # Keyed by the order reference, headers repeating type and id (the relay makes them from the outbox row).
    (record,) = [r for r in reader.records if r.key == reference.encode()]
    assert [(name, value.decode()) for name, value in record.headers] == [
        ("event_type", "order.created"),
        ("event_id", created[0]["event_id"]),
        ("content-type", "application/json"),
    ]
    assert sorted(i for line in created[0]["lines"] for i in expand(line["item_id_ranges"])) == [i.id for i in items]
    assert [line["item_count"] for line in created[0]["lines"]] == [2, 1, 1, 4]
    assert created[0]["custom_order_reference"] == order["custom_order_reference"]

    # invoicing: exactly one e-mail, to the customer, BCC in the envelope only.
    mails = await wait_until(lambda: mails_to(servers.sink, email), timeout=30)
    await settle()
    mails = mails_to(servers.sink, email)
    assert len(mails) == 1
    mail = mails[0]
    assert sorted(mail.rcpt_tos) == sorted([email, *BCC])
    assert mail.message["To"] == f"Anna Schmidt <{email}>"
    headers = "\n".join(f"{name}: {value}" for name, value in mail.message.items())
    for hidden in BCC:
        assert hidden not in headers
    assert "Bcc" not in mail.message
    assert mail.message.is_multipart()
    assert {part.get_content_type() for part in mail.message.iter_parts()} == {"text/plain", "text/html"}
    invoice = (
        await rows(engine, "SELECT invoice_reference FROM invoicing.invoice WHERE order_reference = :r", r=reference)
    )[0]
    assert invoice.invoice_reference in mail.message["Subject"]

    # shipping: one shipment per distinct address + method + date (case/space variants are one).
    shipments = await wait_until(
        lambda: rows(engine, "SELECT id, method_key FROM shipping.shipment WHERE order_reference = :r", r=reference)
    )
    assert len(shipments) == 3
    async with TopicReader(settings, "shipment.created") as reader:
        await reader.wait_for(lambda _: len(reader.events(reference)) >= 3)
        published = reader.events(reference)
    assert sorted(event["shipment_id"] for event in published) == sorted(s.id for s in shipments)
    assert sorted(i for event in published for i in expand(event["item_id_ranges"])) == [item.id for item in items]

    async with TopicReader(settings, "invoice.sent") as reader:
        await reader.wait_for(lambda _: reader.events(reference))
    async with TopicReader(settings, "invoice.generated") as reader:
        await reader.wait_for(lambda _: reader.events(reference))
        assert reader.events(reference)[0]["invoice_reference"] == invoice.invoice_reference
