"""Items kept as groups (migration 0014), against the real database with order_state's own handlers: an order
placed is one group; events and shipments split groups exactly, and the items read back as they were moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import ShipmentCreated, to_ranges
from services.order_state import handlers
from services.order_state.domain.process.engine import Plan
from services.order_state.item_events import fire
from services.order_state.process_catalog import ProcessCatalog
from services.order_state.state_store import load_items, lock_order, write_plans
from services.order_state.tables import outbox
from services.runtime.consumer import Incoming
from services.runtime.unit_of_work import UnitOfWork
from tests.integration.test_placement_rules import RECORD, order_with
from tests.support import rows


async def place(engine, settings, order, *, compressed_batches: bool = False) -> None:
    """Store the order as placement does, its events left unpublished: the services the end-to-end tests keep
    running would otherwise give its items shipments of their own while a test here assigns them."""
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, outbox, "order_state", compressed_batches=compressed_batches)
        await handlers.place_orders(uow, [Incoming(order, RECORD)], ProcessCatalog.load(settings))


async def groups(engine, reference: str) -> list[tuple[str, str, int | None]]:
    found = await rows(
        engine,
        """SELECT g.item_ids::text AS ids, g.state, g.shipment_id FROM order_state.sales_order_item_group g
           JOIN order_state.sales_order o ON o.id = g.order_id WHERE o.order_reference = :r
           ORDER BY lower(g.item_ids)""",
        r=reference,
    )
    return [(row.ids, row.state, row.shipment_id) for row in found]


def created(reference: str, shipment: int, chosen: list[int]) -> Incoming[ShipmentCreated]:
    """shipment.created as shipping publishes it: the shipment and its items."""
    fact = ShipmentCreated(
        order_reference=reference,
        shipment_id=shipment,
        address={
            "first_name": "Anna",
            "last_name": "Schmidt",
            "address1": "Main 1",
            "zip_code": "1",
            "city": "B",
            "country": "DE",
        },
        method={"key": "dhl", "name": "DHL", "price": 0},
        expense={"amount": 0, "currency": "EUR"},
        item_id_ranges=to_ranges(chosen),
    )
    return Incoming(fact, RECORD)


async def pay(engine, catalog: ProcessCatalog, reference: str, **chosen: Any) -> list[int]:
    """Fire `pay` on the items of the order that load_items finds with `chosen`; the ids it found."""
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, outbox, "order_state")
        order_row = await lock_order(conn, reference=reference)
        items = await load_items(conn, order_row.id, **chosen)
        await fire(uow, catalog, order_row, items, "pay", datetime.now(UTC))
        await uow.flush()
    return [item.id for item in items]


async def view(engine, reference: str) -> list[tuple[int, int, str, int, str]]:
    found = await rows(
        engine,
        """SELECT i.id, i.line_number, i.sku, i.quantity, i.state FROM order_state.sales_order_item i
           JOIN order_state.sales_order o ON o.id = i.order_id WHERE o.order_reference = :r ORDER BY i.id""",
        r=reference,
    )
    return [tuple(row) for row in found]


async def test_an_order_placed_is_one_group_and_reads_back_item_by_item(engine, settings):
    order = order_with([(3, True, False), (2, False, False), (2, True, True)])  # 3 items, 1 item of 2, 2 items
    await place(engine, settings, order)
    ((ids, state, shipment),) = await groups(engine, order.order_reference)
    assert state == "payment pending" and shipment is None
    items = await view(engine, order.order_reference)
    first = items[0][0]
    assert ids == f"{{[{first},{first + 6})}}"
    assert [(line, sku, quantity) for _, line, sku, quantity, _ in items] == [
        (1, "SKU-1", 1),
        (1, "SKU-1", 1),
        (1, "SKU-1", 1),
        (2, "SKU-2", 2),
        (3, "SKU-3", 1),
        (3, "SKU-3", 1),
    ]
    async with engine.connect() as conn:
        loaded = await load_items(conn, (await lock_order(conn, reference=order.order_reference)).id)
    assert [(item.id, item.sku, item.quantity, item.state) for item in loaded] == [
        (item_id, sku, quantity, state) for item_id, _, sku, quantity, state in items
    ]


async def test_events_and_shipments_split_groups_and_alike_items_join_again(engine, settings):
    catalog = ProcessCatalog.load(settings)
    order = order_with([(3, True, False), (2, True, False)])
    await place(engine, settings, order)
    reference = order.order_reference
    ids = [item[0] for item in await view(engine, reference)]
    a, b, c, d, e = ids

    # Items b and d go into shipment 7, the rest into shipment 8: four groups (two spans each for shipment 8).
    async with engine.begin() as conn:
        await handlers.assign_shipments(
            UnitOfWork(conn, outbox, "order_state"), [created(reference, 7, [b, d]), created(reference, 8, [a, c, e])]
        )
    assert await groups(engine, reference) == [
        (f"{{[{a},{b}),[{c},{d}),[{e},{e + 1})}}", "payment pending", 8),
        (f"{{[{b},{c}),[{d},{e})}}", "payment pending", 7),
    ]

    # `pay` on shipment 7 only: its items move (and chain on to confirmed), shipment 8's stay.
    assert await pay(engine, catalog, reference, shipment_id=7) == [b, d]
    assert await groups(engine, reference) == [
        (f"{{[{a},{b}),[{c},{d}),[{e},{e + 1})}}", "payment pending", 8),
        (f"{{[{b},{c}),[{d},{e})}}", "confirmed", 7),
    ]

    # The same on chosen items of shipment 8 (a and e): they leave c behind, in a group of its own.
    assert await pay(engine, catalog, reference, item_ids=[a, e, 10**12]) == [a, e]  # an id of no item is ignored
    assert await groups(engine, reference) == [
        (f"{{[{a},{b}),[{e},{e + 1})}}", "confirmed", 8),
        (f"{{[{b},{c}),[{d},{e})}}", "confirmed", 7),
        (f"{{[{c},{d})}}", "payment pending", 8),
    ]
    states = {item_id: state for item_id, _, _, _, state in await view(engine, reference)}
    assert states == {a: "confirmed", b: "confirmed", c: "payment pending", d: "confirmed", e: "confirmed"}

    # Items that entered a state at one moment are found by it (what timeouts ask for).
    async with engine.connect() as conn:
        order_row = await lock_order(conn, reference=reference)
        entered = (
            await rows(
                engine,
                """SELECT state_changed_at FROM order_state.sales_order_item_group
                   WHERE order_id = :o AND shipment_id = 7""",
                o=order_row.id,
            )
        )[0].state_changed_at
        found = await load_items(conn, order_row.id, state="confirmed", entered_at=entered)
        assert [item.id for item in found] == [b, d]
        assert await load_items(conn, order_row.id, state="confirmed", entered_at=entered - timedelta(seconds=1)) == []


async def test_shipment_facts_of_one_batch_apply_in_turn_and_unknown_orders_are_skipped(engine, settings):
    order = order_with([(4, True, False)])
    await place(engine, settings, order)
    reference = order.order_reference
    a, b, c, d = [item[0] for item in await view(engine, reference)]
    batch = [
        created(reference, 7, [a, b, c, d]),
        created("DE--NO-SUCH-ORDER", 8, [c]),
        created(reference, 9, [b, c]),
        created(reference, 7, [c]),
    ]
    async with engine.begin() as conn:
        await handlers.assign_shipments(UnitOfWork(conn, outbox, "order_state"), batch)
    assert await groups(engine, reference) == [
        (f"{{[{a},{b}),[{c},{d + 1})}}", "payment pending", 7),  # c back in 7 by the last fact, one group again
        (f"{{[{b},{c})}}", "payment pending", 9),
    ]


async def test_items_moved_at_one_moment_into_one_state_are_one_group(engine, settings):
    order = order_with([(4, True, False)])
    await place(engine, settings, order)
    a, b, c, d = [item[0] for item in await view(engine, order.order_reference)]
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        order_id = (await lock_order(conn, reference=order.order_reference)).id
        for chosen in ([a], [c]):  # two plans in one transaction, at one moment (as a chain of commands could)
            plan = Plan(
                original_states=dict.fromkeys(chosen, "payment pending"), final_states=dict.fromkeys(chosen, "held")
            )
            await write_plans(conn, [(order_id, plan)], now)
    assert await groups(engine, order.order_reference) == [
        (f"{{[{a},{b}),[{c},{d})}}", "held", None),
        (f"{{[{b},{c}),[{d},{d + 1})}}", "payment pending", None),
    ]


async def test_an_order_of_thousands_of_shipments_gets_each_item_into_its_own(engine, settings):
    order = order_with([(1, True, False)] * 3_000)  # 3,000 lines to 3,000 addresses, announced in two batches
    await place(engine, settings, order, compressed_batches=True)
    reference = order.order_reference
    ids = [item[0] for item in await view(engine, reference)]
    facts = [created(reference, 10_000 + n, [item]) for n, item in enumerate(ids)]
    for batch in (facts[:2_000], facts[2_000:]):
        async with engine.begin() as conn:
            await handlers.assign_shipments(UnitOfWork(conn, outbox, "order_state"), batch)
    shipments = await rows(
        engine,
        """SELECT i.id, i.shipment_id FROM order_state.sales_order_item i
           JOIN order_state.sales_order o ON o.id = i.order_id WHERE o.order_reference = :r ORDER BY i.id""",
        r=reference,
    )
    assert [(row.id, row.shipment_id) for row in shipments] == [(item, 10_000 + n) for n, item in enumerate(ids)]
    assert len(await groups(engine, reference)) == 3_000
