"""One event on every item of a 100,000-item order, set-based, next to one UPDATE per item.

    .venv/bin/python -m bench.bench_item_event [--items 100000]

Both run in the same process against the same PostgreSQL (embedded unless OMS_DATABASE_URL is set),
each on its own order of N items in "payment pending" of the default process. Ours fires `pay`, which
takes the items to "paid" and, through the onEnter event `confirm` (with its command), to
"confirmed": final states, two history rows per item, timeouts dropped and recorded, the command log
and the item.state_changed event in the outbox, in one transaction. The baseline only updates each
item's state with its own UPDATE statement, as a loop over ORM objects would, in a table with a row per item.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.bench_placement import NAIVE_ITEMS
from bench.common import database
from schemas.items import to_ranges
from services.order_state.domain.process.engine import Timeout
from services.order_state.item_events import fire
from services.order_state.process_catalog import ProcessCatalog
from services.order_state.state_store import load_items, lock_order, ranges_of, reserve_ids, write_timeouts
from services.order_state.tables import outbox
from services.runtime.db import create_engine, driver_connection
from services.runtime.outbox_codec import unpack
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork


async def make_order(engine: AsyncEngine, reference: str, items: int, *, naive: bool = False) -> int:
    """An order of `items` items in "payment pending" with their `pay` timeouts, made set-based: one group of
    items as order_state keeps them, or (`naive`) a row per item in the baseline's own table."""
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        # Ids reserved as placement reserves them (in blocks, consecutive here), not one default each.
        reserved = await reserve_ids(conn, 0, items, [])
        lines = [
            {"line_number": 1, "sku": "SKU-BULK", "item_quantity": 1, "item_id_ranges": to_ranges(reserved.item_ids)}
        ]
        order_id = (
            await conn.execute(
                text(
                    """INSERT INTO order_state.sales_order (order_reference, store, locale, currency, price_mode,
                           customer, billing_address, payment_method, process_name, totals, lines, placed_at,
                           placed_event_id)
                       VALUES (:r, 'DE', 'de_DE', 'EUR', 'GROSS_MODE', '{"email": "b@example.com"}', '{}',
                               'dummyPaymentInvoice', 'OmsDefault01', '{"grand_total": 100}', :lines, now(),
                               gen_random_uuid())
                       RETURNING id"""
                ),
                {"r": reference, "lines": json.dumps(lines)},
            )
        ).scalar_one()
        if naive:
            await conn.execute(text(NAIVE_ITEMS))
            await conn.execute(
                text(
                    """INSERT INTO public.bench_naive_item (id, order_id, line_number, sku, quantity, state,
                           state_changed_at)
                       SELECT id, :o, 1, 'SKU-BULK', 1, 'payment pending', :now
                       FROM unnest(CAST(:ids AS bigint[])) AS id"""
                ),
                {"o": order_id, "ids": reserved.item_ids, "now": now},
            )
            await conn.execute(text("ANALYZE public.bench_naive_item"))
            return order_id
        ranges = ranges_of(reserved.item_ids)
        await conn.execute(
            text(
                """INSERT INTO order_state.sales_order_item_group (order_id, item_ids, state, state_changed_at)
                   VALUES (:o, CAST(:ids AS int8multirange), 'payment pending', :now)"""
            ),
            {"o": order_id, "ids": ranges, "now": now},
        )
        await conn.execute(
            text(
                """INSERT INTO order_state.sales_order_item_state_history
                       (order_id, item_ids, item_count, to_state, changed_at)
                   VALUES (:o, CAST(:ids AS int8multirange), :n, 'payment pending', :now)"""
            ),
            {"o": order_id, "ids": ranges, "n": items, "now": now},
        )
        await write_timeouts(conn, order_id, [Timeout("payment pending", "pay", now + timedelta(hours=1), [])], now)
    return order_id


async def ours(engine: AsyncEngine, catalog: ProcessCatalog, reference: str) -> float:
    started = time.perf_counter()
    async with engine.begin() as conn:
        order = await lock_order(conn, reference=reference)
        assert order is not None
        items = await load_items(conn, order.id)
        uow = UnitOfWork(conn, outbox, "order_state")
        plan = await fire(uow, catalog, order, items, "pay", datetime.now(UTC))
        await uow.flush()
    elapsed = time.perf_counter() - started
    assert len(plan.changed) == len(items) and set(plan.changed.values()) == {"confirmed"}
    return elapsed


async def baseline(engine: AsyncEngine, order_id: int) -> float:
    async with engine.connect() as conn:
        ids = list(
            (
                await conn.execute(text("SELECT id FROM public.bench_naive_item WHERE order_id = :o"), {"o": order_id})
            ).scalars()
        )
    started = time.perf_counter()
    async with engine.begin() as conn:
        raw = await driver_connection(conn)  # in the transaction: the loop's updates commit once, at the end
        # By primary key, (order_id, id): by id alone each UPDATE would scan the order's items (since migration
        # 0009 keyed items by order first), and the baseline would grow with the square of the items.
        statement = await raw.prepare(
            """UPDATE public.bench_naive_item SET state = 'confirmed', state_changed_at = now()
               WHERE order_id = $1 AND id = $2"""
        )
        for item_id in ids:
            await statement.fetch(order_id, item_id)
    return time.perf_counter() - started


async def run(settings: Settings, items: int) -> None:
    engine = create_engine(settings, "order_state")
    catalog = ProcessCatalog.load(settings)
    try:
        stamp = int(time.time())
        ours_order = f"BENCH-{stamp}-A"
        await make_order(engine, ours_order, items)
        base_order_id = await make_order(engine, f"BENCH-{stamp}-B", items, naive=True)
        ours_seconds = await ours(engine, catalog, ours_order)
        base_seconds = await baseline(engine, base_order_id)
        async with engine.connect() as conn:
            kept = await conn.execute(
                text("SELECT value, value_codec FROM order_state.outbox WHERE topic = 'item.state_changed'")
            )
            outbox_bytes = max(len(unpack(value, codec) or b"") for value, codec in kept)
    finally:
        await engine.dispose()
    print(f"items per order                    : {items:,}")
    print(f"set-based event (pay -> confirmed) : {ours_seconds:.3f} s")
    print(f"baseline, one UPDATE per item      : {base_seconds:.3f} s")
    print(f"ratio (baseline / ours)            : {base_seconds / ours_seconds:.1f}x")
    print(f"item.state_changed message size    : {outbox_bytes:,} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    args = parser.parse_args()
    with database() as settings:
        asyncio.run(run(settings, args.items))


if __name__ == "__main__":
    main()
