"""Placement rules at B2B scale, against the real database with order_state's own handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord

from schemas import OrderPlaced, model_for_topic
from services.order_state import handlers
from services.order_state.process_catalog import ProcessCatalog
from services.order_state.tables import outbox
from services.runtime.consumer import Incoming
from services.runtime.errors import PermanentError
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.wire import Document, document_decoder
from tests.support import new_order, rows

RECORD = ConsumerRecord("order.placed", 0, 0, 0, 0, b"k", b"{}", None, 0, 0, [])


def order_with(lines: list[tuple[int, bool, bool]]) -> Document:
    """Lines of (quantity, is_quantity_splittable, is_bundle)."""
    document = new_order(1)
    template = document["lines"][0]
    document["lines"] = [
        dict(
            template,
            sku=f"SKU-{n}",
            quantity=quantity,
            unit_price=100,
            is_quantity_splittable=splittable,
            is_bundle=bundle,
        )
        for n, (quantity, splittable, bundle) in enumerate(lines, start=1)
    ]
    document["totals"]["subtotal"] = sum(quantity * 100 for quantity, _, _ in lines)
    return document_decoder(OrderPlaced).validate_python(document)


async def place(engine, settings: Settings, order: Document, *, compressed_batches: bool = False) -> list[dict]:
    catalog = ProcessCatalog.load(settings)
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, outbox, "order_state", compressed_batches=compressed_batches)
        await handlers.place_orders(uow, [Incoming(order, RECORD)], catalog)
        # Events written straight from dicts must still be exactly their contracts.
        for row in uow._pending:
            event = model_for_topic(row.topic).model_validate_json(row.value)
            assert row.event_id == event.event_id and row.headers == "[]"  # the relay adds the event headers
        created = [json.loads(row.value) for row in uow._pending if row.topic == "order.created"]
        await uow.flush()
    return created


async def quantities(engine, reference: str) -> dict[int, list[int]]:
    found = await rows(
        engine,
        """SELECT i.line_number, i.quantity FROM order_state.sales_order_item i
           JOIN order_state.sales_order o ON o.id = i.order_id WHERE o.order_reference = :r ORDER BY i.id""",
        r=reference,
    )
    by_line: dict[int, list[int]] = {}
    for row in found:
        by_line.setdefault(row.line_number, []).append(row.quantity)
    return by_line


async def test_threshold_keeps_big_lines_whole_but_bundles_always_split(engine, settings):
    with_threshold = Settings(**{**settings.model_dump(), "split_threshold": 10})
    order = order_with([(9, True, False), (10, True, False), (12, False, True), (3, False, False)])
    (created,) = await place(engine, with_threshold, order)
    assert await quantities(engine, order["order_reference"]) == {1: [1] * 9, 2: [10], 3: [1] * 12, 4: [3]}
    assert [(line["item_count"], line["item_quantity"]) for line in created["lines"]] == [
        (9, 1),
        (1, 10),
        (12, 1),
        (1, 3),
    ]


async def test_a_b2b_order_of_100000_and_1000000_units_is_stored_set_based_and_fits_one_message(engine, settings):
    order = order_with([(100_000, True, False), (1_000_000, False, False)])
    (created,) = await place(engine, settings, order)
    stored = await quantities(engine, order["order_reference"])
    assert len(stored[1]) == 100_000 and set(stored[1]) == {1}
    assert stored[2] == [1_000_000]
    assert [line["item_count"] for line in created["lines"]] == [100_000, 1]
    assert len(created["lines"][0]["item_id_ranges"]) < 10  # ids come as a few ranges, not 100,000 numbers
    assert len(json.dumps(created)) < 1_000_000 // 100
    states = await rows(
        engine,
        """SELECT i.state, count(*) AS n FROM order_state.sales_order_item i
           JOIN order_state.sales_order o ON o.id = i.order_id WHERE o.order_reference = :r GROUP BY i.state""",
        r=order.order_reference,
    )
    assert [(row.state, row.n) for row in states] == [("payment pending", 100_001)]


async def test_an_order_whose_items_would_not_add_up_is_refused_whole(engine, settings, monkeypatch):
    from services.order_state.domain import splitting

    order = order_with([(5, True, False), (4, True, False)])

    def broken(quantity, **kwargs):
        return splitting.ItemSplit(quantity - 1 if quantity == 4 else quantity, 1)

    monkeypatch.setattr(handlers, "split_line", broken)
    with pytest.raises(PermanentError, match=r"line 2 of order .*: items add up to 3, not the ordered 4"):
        await place(engine, settings, order)
    assert await quantities(engine, order["order_reference"]) == {}
    assert not await rows(
        engine, "SELECT 1 FROM order_state.sales_order WHERE order_reference = :r", r=order.order_reference
    )


async def test_an_order_whose_order_created_would_not_fit_one_kafka_message_is_refused_whole(engine, settings):
    """Relays publishing uncompressed batches (OMS_KAFKA_COMPRESSION_TYPE=none): the limit is the size as written."""
    order = order_with([(1, True, False)] * 2_000)  # 2,000 lines, each with its shipment
    with pytest.raises(PermanentError, match=r"order.created for .* would be [\d,]+ bytes, over Kafka's 1,000,000"):
        await place(engine, settings, order)
    assert await quantities(engine, order["order_reference"]) == {}
    assert not await rows(
        engine, "SELECT 1 FROM order_state.sales_order WHERE order_reference = :r", r=order.order_reference
    )


async def test_with_compressed_batches_an_order_created_over_1_mb_as_written_is_stored_and_queued(engine, settings):
    order = order_with([(1, True, False)] * 2_000)  # about 1.4 MB of order.created, a fraction of it compressed
    (created,) = await place(engine, settings, order, compressed_batches=True)
    assert len(created["lines"]) == 2_000
    assert len(json.dumps(created)) > 1_000_000
    assert await quantities(engine, order["order_reference"]) == {n: [1] for n in range(1, 2_001)}


async def test_with_compressed_batches_an_order_of_the_contracts_10000_lines_is_stored_and_queued(engine, settings):
    order = order_with([(1, True, False)] * 10_000)  # the most order.placed allows: about 7 MB of order.created
    (created,) = await place(engine, settings, order, compressed_batches=True)
    assert len(created["lines"]) == 10_000 and len(json.dumps(created)) > 4_000_000
    assert len(await quantities(engine, order["order_reference"])) == 10_000


async def test_with_compressed_batches_an_order_too_big_even_before_compression_is_refused_whole(engine, settings):
    long = "x" * 255  # names and address lines as long as the contract lets them be
    document = new_order(1)
    template = document["lines"][0]
    address = dict(template["shipment"]["address"], company=long, address1=long, address2=long, address3=long)
    shipment = dict(template["shipment"], address=address)
    document["lines"] = [
        dict(template, sku=f"SKU-{n}", name=long, quantity=1, unit_price=100, shipment=shipment) for n in range(10_000)
    ]
    document["totals"]["subtotal"] = 10_000 * 100
    order = document_decoder(OrderPlaced).validate_python(document)
    with pytest.raises(PermanentError, match=r"would be [\d,]+ bytes, over the 16,000,000 bytes a message may have"):
        await place(engine, settings, order, compressed_batches=True)
    assert not await rows(
        engine, "SELECT 1 FROM order_state.sales_order WHERE order_reference = :r", r=order.order_reference
    )


async def entry_times(engine, reference: str) -> dict[str, set]:
    """Every time placement recorded for the order's items, by where it is kept."""
    found = {}
    for name, query in {
        "order created": "SELECT o.created_at FROM order_state.sales_order o WHERE {order}",
        "items": "SELECT i.state_changed_at FROM order_state.sales_order_item i WHERE i.order_id = ({id})",
        "history": "SELECT h.changed_at FROM order_state.sales_order_item_state_history h WHERE h.order_id = ({id})",
        "timeouts": "SELECT t.entered_at FROM order_state.state_timeout t WHERE t.order_id = ({id})",
    }.items():
        order_id = "SELECT id FROM order_state.sales_order o WHERE o.order_reference = :r"
        sql = query.format(order="o.order_reference = :r", id=order_id)
        found[name] = {row[0] for row in await rows(engine, sql, r=reference)}
    return found


async def test_placement_records_one_entry_time_the_transactions_start_for_items_history_and_timeouts(engine, settings):
    order = order_with([(3, True, False), (2, False, False)])
    (created,) = await place(engine, settings, order)
    times = await entry_times(engine, order["order_reference"])
    (began,) = times["order created"]  # the transaction's start (the column's default, now())
    assert times["items"] == times["history"] == times["timeouts"] == {began}
    assert created["occurred_at"] == began.isoformat().replace("+00:00", "Z")
    # What those rows hold, written without their times: 4 items, the entry and the onEnter move.
    history = await rows(
        engine,
        """SELECT h.from_state, h.to_state, h.item_count FROM order_state.sales_order_item_state_history h
           JOIN order_state.sales_order o ON o.id = h.order_id WHERE o.order_reference = :r ORDER BY h.id""",
        r=order.order_reference,
    )
    assert [tuple(row) for row in history] == [(None, "new", 4), ("new", "payment pending", 4)]
    assert await quantities(engine, order["order_reference"]) == {1: [1, 1, 1], 2: [2]}


async def test_placement_at_a_given_time_records_that_time(engine, settings):
    order = order_with([(2, True, False)])
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    catalog = ProcessCatalog.load(settings)
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, outbox, "order_state")
        await handlers.place_orders(uow, [Incoming(order, RECORD)], catalog, now=at)
        await uow.flush()
    times = await entry_times(engine, order["order_reference"])
    assert times["items"] == times["history"] == times["timeouts"] == {at}
    assert times["order created"] != {at}  # the row's own insertion time


async def test_the_order_row_keeps_a_shipment_its_lines_share_once_and_order_created_repeats_it(engine, settings):
    document = new_order(1)
    first = document["lines"][0]
    hamburg = json.loads(json.dumps(first["shipment"]))
    hamburg["address"]["city"] = "Hamburg"
    document["lines"] = [dict(first, sku=f"SKU-{n}") for n in range(1, 5)]
    document["lines"][2]["shipment"] = hamburg
    document["totals"]["subtotal"] = sum(line["quantity"] * line["unit_price"] for line in document["lines"])
    order = document_decoder(OrderPlaced).validate_python(document)
    (created,) = await place(engine, settings, order)
    (row,) = await rows(
        engine,
        "SELECT lines, shipments FROM order_state.sales_order WHERE order_reference = :r",
        r=order.order_reference,
    )
    shipments = json.loads(row.shipments)
    assert [shipment["address"]["city"] for shipment in shipments] == [first["shipment"]["address"]["city"], "Hamburg"]
    kept = json.loads(row.lines)
    assert [line["shipment"] for line in kept] == [0, 0, 1, 0]
    assert [{**line, "shipment": shipments[line["shipment"]]} for line in kept] == created["lines"]
    assert [line["shipment"]["address"]["city"] for line in created["lines"]][2] == "Hamburg"
