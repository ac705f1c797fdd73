"""Timeouts fire after their interval under a clock the test controls, once, whatever runs at once.

The services run as processes on the real clock; the schedulers here run in the test against the same
database with a clock moved days ahead, as a second and third replica would."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.order_state.process_catalog import ProcessCatalog
from services.order_state.scheduler import Scheduler
from services.order_state.tables import outbox
from tests.support import TopicReader, item_states, new_order, publish_orders, rows, wait_for_states


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def drain(*schedulers: Scheduler, engine=None, references: list[str] | None = None) -> int:
    """Run passes (concurrently when several) until nothing is due any more: other tests' orders are
    in the same database, and every pass takes a bounded batch. A pass skips an order whose row another
    transaction holds (the running service may be applying a fact to it): with `references`, passes go on
    until none of those orders has a timeout due."""
    total = 0
    for _ in range(200):
        fired = sum(await asyncio.gather(*(scheduler.fire_due_timeouts() for scheduler in schedulers)))
        total += fired
        if fired:
            continue
        if references is None or not await rows(
            engine,
            """SELECT 1 FROM order_state.state_timeout t JOIN order_state.sales_order o ON o.id = t.order_id
               WHERE o.order_reference = ANY(:r) AND t.due_at <= :now LIMIT 1""",
            r=references,
            now=schedulers[0].clock(),
        ):
            return total
        await asyncio.sleep(0.1)
    raise AssertionError("timeouts keep firing")


@pytest.fixture
def catalog(settings) -> ProcessCatalog:
    return ProcessCatalog.load(settings)


async def due_times(engine, reference: str) -> dict[str, set[datetime]]:
    found = await rows(
        engine,
        """SELECT t.event, t.due_at FROM order_state.item_timeout t
           JOIN order_state.sales_order o ON o.id = t.order_id WHERE o.order_reference = :r""",
        r=reference,
    )
    due: dict[str, set[datetime]] = {}
    for row in found:
        due.setdefault(row.event, set()).add(row.due_at)
    return due


async def test_timeouts_fire_after_their_interval_and_not_before(settings, services, engine, catalog):
    start = datetime.now(UTC)
    order = new_order(1, process_name="Prepayment01", placed_at=start.isoformat())
    reference = order["order_reference"]
    await publish_orders(settings, [order])
    await wait_for_states(engine, reference, {"Payment - waiting"})
    (remind_at,) = (await due_times(engine, reference))["Payment - remind"]
    assert timedelta(days=2) <= remind_at - start < timedelta(days=2, minutes=1)

    clock = Clock()
    scheduler = Scheduler(engine, catalog, outbox, clock=clock)
    clock.now = remind_at - timedelta(seconds=1)
    await drain(scheduler)
    assert set((await item_states(engine, reference)).values()) == {"Payment - waiting"}

    clock.now = remind_at + timedelta(seconds=1)
    assert await drain(scheduler) >= 1
    assert set((await item_states(engine, reference)).values()) == {"Payment - reminded"}
    # Leaving "waiting" dropped its timeout; "reminded" has its own, counted from placement
    # by the OmsTimeout/Initiation timeout processor.
    due = await due_times(engine, reference)
    assert set(due) == {"Payment - expire"}
    assert due["Payment - expire"] == {datetime.fromisoformat(order["placed_at"]) + timedelta(days=7)}

    clock.now = start + timedelta(days=7, minutes=1)
    await drain(scheduler)
    # expire -> "Payment - expired", whose onEnter event "drop expired" -> cancelled.
    assert set((await item_states(engine, reference)).values()) == {"cancelled"}
    assert await due_times(engine, reference) == {}
    log = await rows(
        engine,
        """SELECT l.command FROM order_state.transition_log l JOIN order_state.sales_order o
                                ON o.id = l.order_id WHERE o.order_reference = :r""",
        r=reference,
    )
    assert [row.command for row in log] == ["Oms/SendPaymentReminder"]

    # The service's relay publishes what the scheduler wrote to the outbox.
    async with TopicReader(settings, "item.state_changed") as reader:
        await reader.wait_for(lambda _: any(e["event"] == "Payment - expire" for e in reader.events(reference)))


async def test_two_schedulers_at_once_never_fire_a_timeout_twice(settings, services, engine, catalog):
    orders = [new_order(n, process_name="Prepayment01") for n in range(1, 41)]
    references = [order["order_reference"] for order in orders]
    await publish_orders(settings, orders)
    for reference in references:
        await wait_for_states(engine, reference, {"Payment - waiting"})
    items = await rows(
        engine,
        """SELECT i.id FROM order_state.sales_order_item i JOIN order_state.sales_order o ON o.id = i.order_id
           WHERE o.order_reference = ANY(:r)""",
        r=references,
    )

    clock = Clock()
    clock.now += timedelta(days=2, minutes=5)
    first = Scheduler(engine, catalog, outbox, clock=clock, batch_size=7)
    second = Scheduler(engine, catalog, outbox, clock=clock, batch_size=7)
    await drain(first, second, first, engine=engine, references=references)

    fired = await rows(
        engine,
        """SELECT h.item_id, count(*) AS times FROM order_state.item_state_history h
           WHERE h.item_id = ANY(:ids) AND h.event = 'Payment - remind' GROUP BY h.item_id""",
        ids=[row.id for row in items],
    )
    assert len(fired) == len(items)
    assert {row.times for row in fired} == {1}
    reminders = await rows(
        engine,
        """SELECT count(*) AS runs, sum(l.item_count) AS items FROM order_state.transition_log l
           JOIN order_state.sales_order o ON o.id = l.order_id
           WHERE o.order_reference = ANY(:r) AND l.command = 'Oms/SendPaymentReminder'""",
        r=references,
    )
    assert reminders[0].runs == len(orders)  # one reminder per order, never two
    assert reminders[0].items == len(items)


async def test_transitions_without_an_event_are_checked_periodically(settings, services, engine, catalog):
    paid = new_order(1, process_name="GiftCardExpress01")
    paid["lines"][0]["sku"] = "GIFT-CARD-50"
    unpaid = new_order(1, process_name="GiftCardExpress01", payment_method="dummyPaymentUnpaid")
    await publish_orders(settings, [paid, unpaid])

    # authorized -> captured has no event, only the condition DummyPayment/IsPayed; the service's scheduler
    # re-checks it without anyone firing an event. captured's onEnter event `route` then sends gift cards
    # one way (condition GiftCard/IsGiftCard) and the rest the other.
    await wait_for_states(engine, paid["order_reference"], {"gift card created", "delivered", "waiting for shipment"})
    by_sku = {
        row.sku: row.state
        for row in await rows(
            engine,
            """SELECT i.sku, i.state FROM order_state.sales_order_item i JOIN order_state.sales_order o
               ON o.id = i.order_id WHERE o.order_reference = :r""",
            r=paid["order_reference"],
        )
    }
    assert by_sku["GIFT-CARD-50"] in {"gift card created", "delivered"}
    assert by_sku["SKU-PALLET-WATER"] == "waiting for shipment"
    history = await rows(
        engine,
        """SELECT DISTINCT h.from_state, h.to_state, h.event FROM order_state.item_state_history h
           JOIN order_state.sales_order o ON o.id = h.order_id WHERE o.order_reference = :r AND h.event IS NULL
           AND h.from_state IS NOT NULL""",
        r=paid["order_reference"],
    )
    assert [tuple(row) for row in history] == [("authorized", "captured", None)]

    # Where the condition does not hold, the items wait and the check comes back later.
    await wait_for_states(engine, unpaid["order_reference"], {"authorized"})
    clock = Clock()
    clock.now += timedelta(minutes=5)
    scheduler = Scheduler(engine, catalog, outbox, clock=clock, condition_interval=timedelta(seconds=10))
    await scheduler.check_conditions()
    assert set((await item_states(engine, unpaid["order_reference"])).values()) == {"authorized"}
    (check,) = await rows(
        engine,
        """SELECT c.next_check_at FROM order_state.state_condition_check c
           JOIN order_state.sales_order o ON o.id = c.order_id WHERE o.order_reference = :r""",
        r=unpaid["order_reference"],
    )
    assert check.next_check_at == clock.now + timedelta(seconds=10)
    assert not await rows(
        engine,
        """SELECT 1 FROM order_state.state_condition_check c JOIN order_state.sales_order o ON o.id = c.order_id
           WHERE o.order_reference = :r AND c.state = 'authorized'""",
        r=paid["order_reference"],
    )
