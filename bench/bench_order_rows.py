"""Writing order rows: kept as they are (rows up to 8 kB, migration 0008) vs compressed by PostgreSQL.

    .venv/bin/python -m bench.bench_order_rows [--orders 20000] [--rounds 3]

Against one PostgreSQL (embedded unless OMS_DATABASE_URL is set), in two tables shaped like
order_state.sales_order: N ordinary 5-line orders (each row with its lines as order.created carries them,
about 3.6 kB) are written the way placement writes them (one COPY per batch of 1,000, in a transaction). The
baseline is the table as it was before migration 0008: rows over 2 kB compressed with pglz (the embedded
server has no lz4). Each round runs both; the fastest round of each is reported, with PostgreSQL's CPU time
(its server processes, when it runs on this machine), the ratios, and what a row takes on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

from pydantic_core import to_json
from sqlalchemy import MetaData, text

from bench.bench_placement import ordinary_order
from bench.common import cpu_per, database, postgres_cpu
from schemas import OrderPlaced
from services.order_state.domain.splitting import split_line
from services.order_state.handlers import ORDER_COLUMNS, lines_json
from services.order_state.tables import sales_order
from services.runtime.db import copy_rows, create_engine
from services.runtime.documents import document_validator
from services.runtime.settings import Settings

KINDS = {"compressed": "as before migration 0008 (baseline)", "as is": "kept as they are (migration 0008)"}


def order_rows(orders: int) -> list[tuple[object, ...]]:
    """Rows as placement writes them, for ordinary 5-line orders."""
    validate = document_validator(OrderPlaced).validate_json
    now, rows, next_item = datetime.now(UTC), [], 1
    for number in range(orders):
        order = validate(to_json(ordinary_order(number, "R", "ROWS")))
        splits = [
            split_line(
                line["quantity"],
                is_quantity_splittable=line["is_quantity_splittable"],
                threshold=None,
                is_bundle=line["is_bundle"],
            )
            for line in order["lines"]
        ]
        ids = []
        for split in splits:
            ids.append(list(range(next_item, next_item + split.count)))
            next_item += split.count
        rows.append(
            (
                number + 1,
                order["order_reference"],
                None,
                order["store"],
                order["locale"],
                order["currency"],
                order["price_mode"],
                order["customer"]["customer_reference"],
                to_json(order["customer"]).decode(),
                to_json(order["billing_address"]).decode(),
                order["payment_method"],
                "OmsDefault01",
                to_json(order["totals"]).decode(),
                lines_json(order, splits, ids).decode(),
                now,
                uuid.uuid4(),
            )
        )
    return rows


async def one_round(settings: Settings, schema: str, rows: list[tuple[object, ...]]) -> tuple[float, float | None]:
    """Seconds for writing all rows into `schema`.sales_order, and PostgreSQL's CPU seconds meanwhile."""
    engine = create_engine(settings, "order_state")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {schema}.sales_order"))
        async with postgres_cpu(settings) as cpu:
            cpu_before, started = cpu(), time.perf_counter()
            for first in range(0, len(rows), 1000):
                async with engine.begin() as conn:
                    await copy_rows(conn, schema, "sales_order", ORDER_COLUMNS, rows[first : first + 1000])
            seconds, cpu_after = time.perf_counter() - started, cpu()
            return seconds, (cpu_after - cpu_before) if cpu_after is not None and cpu_before is not None else None
    finally:
        await engine.dispose()


async def run(settings: Settings, orders: int, rounds: int) -> None:
    engine = create_engine(settings, "order_state")
    tag = uuid.uuid4().hex[:6]
    schemas = {kind: f"bench_rows_{tag}_{n}" for n, kind in enumerate(KINDS)}
    async with engine.begin() as conn:
        for kind, schema in schemas.items():
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
            await conn.run_sync(sales_order.to_metadata(MetaData(), schema=schema).metadata.create_all)
            if kind == "compressed":
                await conn.execute(text(f"ALTER TABLE {schema}.sales_order RESET (toast_tuple_target)"))
    rows = order_rows(orders)
    results: dict[str, list[tuple[float, float | None]]] = {kind: [] for kind in KINDS}
    for _ in range(rounds):
        for kind, schema in schemas.items():
            results[kind].append(await one_round(settings, schema, rows))
    sizes = {}
    async with engine.begin() as conn:
        for kind, schema in schemas.items():
            sizes[kind] = (
                await conn.execute(text(f"SELECT pg_total_relation_size('{schema}.sales_order')"))
            ).scalar() / orders
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    await engine.dispose()
    best = {kind: min(results[kind], key=lambda result: result[0]) for kind in KINDS}

    print(f"{orders:,} ordinary 5-line order rows written with COPY, batches of 1,000:")
    for kind, label in KINDS.items():
        seconds, cpu = best[kind]
        print(f"  {label:38s}: {seconds:.2f} s{cpu_per(cpu, orders, 'order')}, {sizes[kind]:,.0f} bytes a row on disk")
    baseline, ours = best["compressed"], best["as is"]
    ratio = f"  ratio{' ' * 33}: {baseline[0] / ours[0]:.1f}x time"
    if baseline[1] is not None and ours[1]:
        ratio += f", {baseline[1] / ours[1]:.1f}x PostgreSQL CPU"
    print(ratio + f", {sizes['as is'] / sizes['compressed']:.1f}x the disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with database() as settings:
        asyncio.run(run(settings, args.orders, args.rounds))


if __name__ == "__main__":
    main()
