"""A B2B order of 100,000 + 1,000,000 units through the running system: placed, shipped, paid."""

from __future__ import annotations

import json

from services.runtime.embedded import wait_until
from tests.support import TopicReader, new_order, publish_orders, publish_raw, request_event, rows, scalar

UNITS = 100_000
LINES = 10_000  # the most order.placed allows


async def test_an_order_of_100000_items_is_stored_shipped_and_moved_as_one(settings, services, engine):
    order = new_order(1)
    template = order["lines"][0]
    order["lines"] = [
        dict(template, sku="SCREW-M4", quantity=UNITS, unit_price=2, is_quantity_splittable=True),
        dict(template, sku="WASHER-M4", quantity=1_000_000, unit_price=1, is_quantity_splittable=False),
    ]
    order["totals"]["subtotal"] = UNITS * 2 + 1_000_000
    reference = order["order_reference"]
    await publish_orders(settings, [order])

    async def items_with_a_shipment() -> int | None:
        counted = await scalar(
            engine,
            """SELECT count(i.shipment_id) FROM order_state.sales_order_item i
               JOIN order_state.sales_order o ON o.id = i.order_id WHERE o.order_reference = :r""",
            r=reference,
        )
        return counted if counted == UNITS + 1 else None

    # order_state stores 100,001 items; shipping makes one shipment of them all and announces it with
    # ranges; order_state records every item's shipment (one array parameter, not 100,001).
    assert await wait_until(items_with_a_shipment, timeout=120) == UNITS + 1
    (shipment,) = await rows(
        engine,
        """SELECT s.id, count(i.item_id) AS items FROM shipping.shipment s
           JOIN shipping.shipment_item i ON i.shipment_id = s.id WHERE s.order_reference = :r GROUP BY s.id""",
        r=reference,
    )
    assert shipment.items == UNITS + 1

    # Paying moves every item to confirmed; shipping learns all their states from item.state_changed.
    await request_event(settings, reference, "pay")

    async def shipping_knows_them_confirmed() -> bool:
        confirmed = await scalar(
            engine,
            "SELECT count(*) FROM shipping.item_state WHERE order_reference = :r AND state = 'confirmed'",
            r=reference,
        )
        return confirmed == UNITS + 1

    assert await wait_until(shipping_knows_them_confirmed, timeout=120)
    states = await rows(
        engine,
        """SELECT i.state, count(*) AS n FROM order_state.sales_order_item i
           JOIN order_state.sales_order o ON o.id = i.order_id WHERE o.order_reference = :r GROUP BY i.state""",
        r=reference,
    )
    assert [(row.state, row.n) for row in states] == [("confirmed", UNITS + 1)]


async def test_an_order_of_the_contracts_10000_lines_reaches_every_service(settings, services, engine):
    """The most lines order.placed allows: order.created is about 7 MB as written; the relay publishes it
    compressed (OMS_KAFKA_COMPRESSION_TYPE), as Kafka's 1 MB limit applies to the compressed batch; invoicing
    and shipping read it whole."""
    order = new_order(1)
    template = order["lines"][0]
    order["lines"] = [dict(template, sku=f"PART-{n:05d}", quantity=1, unit_price=100) for n in range(LINES)]
    order["totals"]["subtotal"] = LINES * 100
    reference = order["order_reference"]
    await publish_raw(
        settings, "order.placed", [(reference.encode(), json.dumps(order).encode())], compression_type="zstd"
    )

    async with TopicReader(settings, "order.created") as reader:
        await reader.wait_for(lambda _: reader.events(reference), timeout=120)
    (created,) = reader.events(reference)
    assert len(created["lines"]) == LINES
    assert max(len(record.value) for record in reader.records if record.key == reference.encode()) > 4_000_000

    async def shipped_items() -> int | None:
        counted = await scalar(
            engine,
            "SELECT count(*) FROM shipping.shipment_item i JOIN shipping.shipment s ON s.id = i.shipment_id "
            "WHERE s.order_reference = :r",
            r=reference,
        )
        return counted if counted == LINES else None

    assert await wait_until(shipped_items, timeout=120) == LINES

    async def invoicing_lines() -> int | None:
        return await scalar(
            engine,
            "SELECT jsonb_array_length(payload->'lines') FROM invoicing.order_snapshot WHERE order_reference = :r",
            r=reference,
        )

    assert await wait_until(invoicing_lines, timeout=120) == LINES
