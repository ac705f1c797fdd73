"""The outbox's round trip for order.created-sized events: kept as written vs kept lz4-compressed.

    .venv/bin/python -m bench.bench_outbox [--events 20000] [--rounds 3]

Against one PostgreSQL (embedded unless OMS_DATABASE_URL is set), in a table shaped like every service's
outbox: N ordinary order.created events (about 4 kB of JSON each) are written the way a handler's unit of
work writes them (one COPY per batch of 1,000, in a transaction) and taken the way the relay takes them
(DELETE ... RETURNING, 1,000 a transaction), then uncompressed as the relay does. The baseline keeps the
values as written (what the outbox did before `value_codec`). Each round runs both; the fastest round of
each is reported, with PostgreSQL's CPU time (its server processes, when it runs on this machine) and the
ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

from sqlalchemy import MetaData, text

from bench.bench_placement import ordinary_order
from bench.common import cpu_per, database, postgres_cpu
from services.runtime.db import copy_rows, create_engine, driver_connection
from services.runtime.messaging_tables import outbox_table
from services.runtime.outbox_codec import pack, unpack
from services.runtime.settings import Settings
from services.runtime.unit_of_work import OUTBOX_COLUMNS, OutboxRow


def order_created(number: int) -> bytes:
    """An order.created of an ordinary 5-line order (the lines as placed, items as id ranges)."""
    order = ordinary_order(number, "O", "OUTBOX")
    for line, first in zip(order["lines"], range(1, 100, 10), strict=False):
        line.update(item_id_ranges=[[first, first + 2]], item_count=3, item_quantity=1)
    return json.dumps({**order, "event_type": "order.created", "initial_state": "new"}).encode()


async def one_round(settings: Settings, schema: str, events: list[bytes], compress: bool) -> tuple[float, float | None]:
    """Seconds for writing and taking all events, and PostgreSQL's CPU seconds meanwhile (None: not known)."""
    engine = create_engine(settings, "order_state")
    try:
        async with postgres_cpu(settings) as cpu:
            cpu_before, started = cpu(), time.perf_counter()
            for first in range(0, len(events), 1000):  # batches as the consumer writes them (UnitOfWork.flush)
                rows = []
                for value in events[first : first + 1000]:
                    kept, codec = pack(value) if compress else (value, None)
                    rows.append(OutboxRow("order.created", b"DE--1", kept, "[]", uuid.uuid4(), codec))
                async with engine.begin() as conn:
                    await copy_rows(conn, schema, "outbox", OUTBOX_COLUMNS, rows)
            taken = 0
            while taken < len(events):  # as the relay takes them
                async with engine.begin() as conn:
                    rows = await (await driver_connection(conn)).fetch(
                        f"""DELETE FROM {schema}.outbox WHERE id = ANY(ARRAY(
                                SELECT id FROM {schema}.outbox ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED))
                            RETURNING value, value_codec"""
                    )
                    for row in rows:
                        unpack(row["value"], row["value_codec"])
                    taken += len(rows)
            seconds, cpu_after = time.perf_counter() - started, cpu()
            return seconds, (cpu_after - cpu_before) if cpu_after is not None and cpu_before is not None else None
    finally:
        await engine.dispose()


async def run(settings: Settings, events: int, rounds: int) -> None:
    engine = create_engine(settings, "order_state")
    schema = f"bench_outbox_{uuid.uuid4().hex[:6]}"
    metadata = MetaData(schema=schema)
    outbox_table(metadata)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.run_sync(metadata.create_all)
        # As the services' migrations keep it: values inline and uncompressed by PostgreSQL.
        await conn.execute(text(f"ALTER TABLE {schema}.outbox ALTER COLUMN value SET STORAGE EXTERNAL"))
    await engine.dispose()
    values = [order_created(n) for n in range(events)]
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(rounds):
        for compress in (False, True):
            results[compress].append(await one_round(settings, schema, values, compress))
    plain, packed = (min(results[kind], key=lambda result: result[0]) for kind in (False, True))
    size = sum(map(len, values)) / len(values)

    print(f"{events:,} order.created events of {size:,.0f} bytes, written and taken through an outbox table:")
    print(f"  kept as written (baseline) : {plain[0]:.2f} s{cpu_per(plain[1], events, 'event')}")
    print(f"  kept lz4-compressed        : {packed[0]:.2f} s{cpu_per(packed[1], events, 'event')}")
    ratio = f"  ratio                      : {plain[0] / packed[0]:.1f}x time"
    if plain[1] is not None and packed[1]:
        ratio += f", {plain[1] / packed[1]:.1f}x PostgreSQL CPU"
    print(ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with database() as settings:
        asyncio.run(run(settings, args.events, args.rounds))


if __name__ == "__main__":
    main()
