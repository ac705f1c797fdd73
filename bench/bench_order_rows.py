"""Writing the rows of placed orders, as order_state's tables keep them now vs as they were.

    .venv/bin/python -m bench.bench_order_rows [--orders 20000] [--rounds 3]

Against one PostgreSQL (embedded unless OMS_DATABASE_URL is set), in tables shaped like order_state's: N
ordinary 5-line orders are written the way placement writes them (one COPY per batch of 1,000 orders, in a
transaction).
- Order rows: as they are now (each distinct shipment of the order kept once, the lines pointing at theirs,
  migration 0015; rows up to 8 kB uncompressed, 0008; customer, billing address and totals as json, lines as
  text, 0009), as up to 0014 (each line with its shipment, as order.created carries them), as after 0008 (jsonb
  parts, json lines), and as before 0008 (rows over 2 kB compressed with pglz; the embedded server has no lz4).
- Items (eight per order): as groups, one row per order (migration 0014), vs a row per item with primary key
  (order_id, id) (0009 to 0013) vs a row per item with primary key (id) plus an index on order_id (before 0009).
Each round runs every variant; the fastest round of each is reported, with PostgreSQL's CPU time (its server
processes, when it runs on this machine), the ratios against the current tables, and what a row takes on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

from pydantic_core import to_json
from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, PrimaryKeyConstraint, Table, Text, text

from bench.bench_placement import ordinary_order
from bench.common import cpu_per, database, postgres_cpu
from schemas import OrderPlaced
from services.order_state.domain.splitting import split_line
from services.order_state.handlers import ORDER_COLUMNS, lines_json
from services.order_state.state_store import ranges_of
from services.order_state.tables import sales_order, sales_order_item_group
from services.runtime.db import copy_rows, create_engine
from services.runtime.json_codec import encode_json
from services.runtime.settings import Settings
from services.runtime.wire import document_decoder

# Variant: (label, statements that turn the current table into it)
TYPES_OF_0008 = """ALTER TABLE {schema}.sales_order ALTER COLUMN customer TYPE jsonb, ALTER COLUMN billing_address
    TYPE jsonb, ALTER COLUMN totals TYPE jsonb, ALTER COLUMN lines TYPE json USING lines::json"""
WITHOUT_SHIPMENTS = "ALTER TABLE {schema}.sales_order DROP COLUMN shipments"
# Variant: (label, statements that turn the current table into it, rows with each shipment once)
ORDER_KINDS = {
    "now": ("order rows, each shipment once (0015)", (), True),
    "0014": ("order rows, shipment on each line (0009-0014)", (WITHOUT_SHIPMENTS,), False),
    "0008": ("order rows, jsonb parts, json lines (0008)", (WITHOUT_SHIPMENTS, TYPES_OF_0008), False),
    "pglz": (
        "order rows compressed, as before 0008",
        (WITHOUT_SHIPMENTS, TYPES_OF_0008, "ALTER TABLE {schema}.sales_order RESET (toast_tuple_target)"),
        False,
    ),
}
# The order row's columns up to 0014: its lines held their shipments.
COLUMNS_OF_0014 = tuple(column for column in ORDER_COLUMNS if column != "shipments")
_LINES, _SHIPMENTS = ORDER_COLUMNS.index("lines"), ORDER_COLUMNS.index("shipments")
# The items' table from 0009 to 0013: a row per item.
ITEM_ROWS = Table(
    "sales_order_item",
    MetaData(),
    Column("id", BigInteger, nullable=False),
    Column("order_id", BigInteger, nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("sku", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("state_changed_at", DateTime(timezone=True), nullable=False),
    Column("shipment_id", BigInteger),
    PrimaryKeyConstraint("order_id", "id"),
    postgresql_with={"fillfactor": 70},
)
# Variant: (label, table, statements that turn it into the variant)
ITEM_KINDS = {
    "now": ("items as groups, a row per order (0014)", sales_order_item_group, ()),
    "0013": ("a row per item, key (order_id, id) (0009-0013)", ITEM_ROWS, ()),
    "before": (
        "a row per item, key (id) + index on order_id",
        ITEM_ROWS,
        (
            "ALTER TABLE {schema}.sales_order_item DROP CONSTRAINT sales_order_item_pkey",
            "ALTER TABLE {schema}.sales_order_item ADD PRIMARY KEY (id)",
            "CREATE INDEX ON {schema}.sales_order_item (order_id)",
        ),
    ),
}
ITEM_COLUMNS = ("id", "order_id", "line_number", "sku", "quantity", "state", "state_changed_at")
GROUP_COLUMNS = ("order_id", "item_ids", "state", "state_changed_at")


def order_rows(
    orders: int,
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[list[tuple[object, ...]]]]:
    """Order rows as placement writes them and as it wrote them up to migration 0014 (each line with its
    shipment), for ordinary 5-line orders, and their item rows (per order)."""
    validate = document_decoder(OrderPlaced).decode_json
    now, rows, rows_of_0014, items, next_item = datetime.now(UTC), [], [], [], 1
    for number in range(orders):
        order = validate(to_json(ordinary_order(number, "R", "ROWS")))
        splits = [
            split_line(
                line.quantity,
                is_quantity_splittable=line.is_quantity_splittable,
                threshold=None,
                is_bundle=line.is_bundle,
            )
            for line in order.lines
        ]
        ids = []
        for split in splits:
            ids.append(list(range(next_item, next_item + split.count)))
            next_item += split.count
        items.append(
            [
                (item_id, number + 1, line_number, line.sku, split.quantity_each, "payment pending", now)
                for line_number, (line, split, line_ids) in enumerate(
                    zip(order.lines, splits, ids, strict=True), start=1
                )
                for item_id in line_ids
            ]
        )
        created_lines, kept_lines, shipments = lines_json(order, splits, ids)
        rows.append(
            (
                number + 1,
                order.order_reference,
                None,
                order.store,
                order.locale,
                order.currency,
                order.price_mode,
                order.customer.customer_reference,
                encode_json(order.customer).decode(),
                encode_json(order.billing_address).decode(),
                order.payment_method,
                "OmsDefault01",
                encode_json(order.totals).decode(),
                kept_lines.decode(),
                shipments.decode(),
                now,
                uuid.uuid4(),
            )
        )
        row = rows[-1]
        rows_of_0014.append(
            tuple(created_lines.decode() if n == _LINES else value for n, value in enumerate(row) if n != _SHIPMENTS)
        )
    return rows, rows_of_0014, items


async def one_round(
    settings: Settings, schema: str, table: str, columns: tuple[str, ...], batches: list[list[tuple[object, ...]]]
) -> tuple[float, float | None]:
    """Seconds for writing all batches into `schema`.`table`, and PostgreSQL's CPU seconds meanwhile."""
    engine = create_engine(settings, "order_state")
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {schema}.{table}"))
        async with postgres_cpu(settings) as cpu:
            cpu_before, started = cpu(), time.perf_counter()
            for batch in batches:
                async with engine.begin() as conn:
                    await copy_rows(conn, schema, table, columns, batch)
            seconds, cpu_after = time.perf_counter() - started, cpu()
            return seconds, (cpu_after - cpu_before) if cpu_after is not None and cpu_before is not None else None
    finally:
        await engine.dispose()


async def run(settings: Settings, orders: int, rounds: int) -> None:
    engine = create_engine(settings, "order_state")
    tag = uuid.uuid4().hex[:6]
    rows, rows_of_0014, items = order_rows(orders)
    order_batches = [rows[first : first + 1000] for first in range(0, orders, 1000)]
    order_batches_of_0014 = [rows_of_0014[first : first + 1000] for first in range(0, orders, 1000)]
    item_batches = [
        [item for order in items[first : first + 1000] for item in order] for first in range(0, orders, 1000)
    ]
    # The groups placement writes: an order's items all end up in one state, one row with their ids.
    group_batches = [
        [
            (order[0][1], ranges_of([item[0] for item in order]), order[0][5], order[0][6])
            for order in items[first : first + 1000]
        ]
        for first in range(0, orders, 1000)
    ]
    # variant -> (label, table, statements, columns, batches)
    variants: dict[tuple[str, str], tuple[str, Table, tuple[str, ...], tuple[str, ...], list]] = {
        ("orders", kind): (
            label,
            sales_order,
            statements,
            ORDER_COLUMNS if once else COLUMNS_OF_0014,
            order_batches if once else order_batches_of_0014,
        )
        for kind, (label, statements, once) in ORDER_KINDS.items()
    }
    variants |= {
        ("items", kind): (
            label,
            table,
            statements,
            GROUP_COLUMNS if table is sales_order_item_group else ITEM_COLUMNS,
            group_batches if table is sales_order_item_group else item_batches,
        )
        for kind, (label, table, statements) in ITEM_KINDS.items()
    }
    schemas = {variant: f"bench_rows_{tag}_{n}" for n, variant in enumerate(variants)}
    async with engine.begin() as conn:
        for variant, (_, table, statements, _, _) in variants.items():
            schema = schemas[variant]
            await conn.execute(text(f"CREATE SCHEMA {schema}"))
            await conn.run_sync(table.to_metadata(MetaData(), schema=schema).metadata.create_all)
            for statement in statements:
                await conn.execute(text(statement.format(schema=schema)))
    results: dict[tuple[str, str], list[tuple[float, float | None]]] = {variant: [] for variant in variants}
    for _ in range(rounds):
        for variant, (_, table, _, columns, data) in variants.items():
            results[variant].append(await one_round(settings, schemas[variant], table.name, columns, data))
    sizes = {}
    async with engine.begin() as conn:
        for variant, (_, table, _, _, _) in variants.items():
            schema = schemas[variant]
            sizes[variant] = (
                await conn.execute(text(f"SELECT pg_total_relation_size('{schema}.{table.name}')"))
            ).scalar() / orders
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    await engine.dispose()
    best = {variant: min(results[variant], key=lambda result: result[0]) for variant in variants}

    print(f"{orders:,} ordinary 5-line orders written with COPY, batches of 1,000 orders:")
    for variant, (label, *_) in variants.items():
        seconds, cpu = best[variant]
        line = f"  {label:46s}: {seconds:.2f} s{cpu_per(cpu, orders, 'order')}, {sizes[variant]:,.0f} bytes an order"
        now = best[(variant[0], "now")]
        if variant[1] != "now":
            line += f"; now {seconds / now[0]:.1f}x faster"
            if cpu is not None and now[1]:
                line += f", {cpu / now[1]:.1f}x less PostgreSQL CPU"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with database() as settings:
        asyncio.run(run(settings, args.orders, args.rounds))


if __name__ == "__main__":
    main()
