"""Reading and writing item states: set-based, a handful of statements whatever the number of items."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, islice, repeat
from typing import Any, NamedTuple

import orjson
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.items import to_ranges
from services.order_state.domain.process.engine import Plan, Timeout
from services.order_state.domain.process.plugins import ItemFacts, OrderFacts
from services.order_state.tables import ID_BLOCK, SCHEMA
from services.runtime.db import copy_rows, driver_connection

ORDER_COLUMNS = """o.id, o.order_reference, o.custom_order_reference, o.store, o.process_name, o.payment_method,
    o.currency, (o.totals->>'grand_total')::bigint AS grand_total, o.placed_at, o.customer_reference, o.created_at"""


@dataclass(frozen=True)
class OrderRow:
    id: int
    order_reference: str
    custom_order_reference: str | None
    store: str
    process_name: str
    payment_method: str
    currency: str
    grand_total: int
    placed_at: datetime
    customer_reference: str | None
    created_at: datetime

    def facts(self, correlation_id: Any = None) -> OrderFacts:
        return OrderFacts(
            order_id=self.id,
            order_reference=self.order_reference,
            custom_order_reference=self.custom_order_reference,
            store=self.store,
            process_name=self.process_name,
            payment_method=self.payment_method,
            currency=self.currency,
            grand_total=self.grand_total,
            placed_at=self.placed_at,
            customer_reference=self.customer_reference,
            correlation_id=correlation_id,
        )


async def lock_order(
    conn: AsyncConnection, *, reference: str | None = None, order_id: int | None = None, skip_locked: bool = False
) -> OrderRow | None:
    """The order, its row locked until commit: every state change of an order happens under this lock."""
    where = "o.order_reference = :key" if reference is not None else "o.id = :key"
    lock = "FOR UPDATE SKIP LOCKED" if skip_locked else "FOR UPDATE"
    row = (
        await conn.execute(
            text(f"SELECT {ORDER_COLUMNS} FROM order_state.sales_order o WHERE {where} {lock}"),
            {"key": reference if reference is not None else order_id},
        )
    ).first()
    return OrderRow(**row._mapping) if row else None


async def lock_orders(conn: AsyncConnection, references: Sequence[str]) -> dict[str, int]:
    """Lock the orders with these references (those that exist) until commit, in id order (two transactions
    locking overlapping sets cannot deadlock on them); their ids by reference."""
    rows = await (await driver_connection(conn)).fetch(
        """SELECT id, order_reference FROM order_state.sales_order WHERE order_reference = ANY($1::text[])
           ORDER BY id FOR UPDATE""",
        list(dict.fromkeys(references)),
    )
    return {row[1]: row[0] for row in rows}


async def load_items(
    conn: AsyncConnection,
    order_id: int,
    *,
    item_ids: list[int] | None = None,
    shipment_id: int | None = None,
    state: str | None = None,
    entered_at: datetime | None = None,
) -> list[ItemFacts]:
    """Items of one order, in id order: all, chosen ids, one shipment's, or those that entered `state` at
    `entered_at`. Read as groups (their id spans and state) and the order's lines (each line's SKU, item quantity
    and id ranges): a 100,000-item order in one state is one span."""
    where = "g.order_id = $1"
    spans = "g.item_ids"
    args: list[Any] = [order_id]
    if item_ids is not None:
        spans = "g.item_ids * (SELECT range_agg(int8range(i, i + 1)) FROM unnest($2::bigint[]) i)"
        args.append(item_ids)
    elif shipment_id is not None:
        where += " AND g.shipment_id = $2"
        args.append(shipment_id)
    elif state is not None and entered_at is not None:
        where += " AND g.state = $2 AND g.state_changed_at = $3"
        args += [state, entered_at]
    row = await (await driver_connection(conn)).fetchrow(
        f"""SELECT (SELECT lines FROM order_state.sales_order WHERE id = $1),
                   array_agg(lower(span) ORDER BY lower(span)), array_agg(upper(span) ORDER BY lower(span)),
                   array_agg(g.state ORDER BY lower(span))
            FROM order_state.sales_order_item_group g CROSS JOIN LATERAL unnest({spans}) span
            WHERE {where}""",
        *args,
    )
    if row[1] is None:
        return []
    return items_of(row[0], row[1], row[2], row[3])


def items_of(lines_json: str, lowers: list[int], uppers: list[int], states: list[str]) -> list[ItemFacts]:
    """The items of id spans [lower, upper) in `states` (spans disjoint, in id order), with the SKU and item
    quantity of the line each id belongs to, in id order."""
    lines = sorted(
        (first, last + 1, line["sku"], line["item_quantity"])
        for line in orjson.loads(lines_json)
        for first, last in line["item_id_ranges"]
    )
    starts = [line[0] for line in lines]
    items: list[ItemFacts] = []
    for lower, upper, state in zip(lowers, uppers, states, strict=True):
        at = max(bisect_right(starts, lower) - 1, 0)
        while at < len(lines) and lines[at][0] < upper:
            first, end, sku, quantity = lines[at]
            ids = range(max(first, lower), min(end, upper))
            if ids:
                items += map(ItemFacts, ids, repeat(sku), repeat(quantity), repeat(state))
            at += 1
    return items


class Reserved(NamedTuple):
    order_ids: list[int]
    item_ids: list[int]
    taken_references: set[str]
    began: datetime  # the transaction's start, PostgreSQL's now(): what the entry-time columns default to


async def reserve_ids(conn: AsyncConnection, orders: int, items: int, references: list[str]) -> Reserved:
    """One round trip before a batch of orders is written: `orders` new order ids and `items` new item ids
    from their identity sequences (so orders and items can be planned, then copied in once, in their final
    state), which of `references` are already taken by stored orders, and when the transaction began. Each
    `nextval` stands for a block of ID_BLOCK ids (migration 0011)."""
    row = await (await driver_connection(conn)).fetchrow(
        """SELECT array(SELECT nextval('order_state.sales_order_id_seq') FROM generate_series(1, $1)),
                  array(SELECT nextval('order_state.sales_order_item_id_seq') FROM generate_series(1, $2)),
                  array(SELECT order_reference FROM order_state.sales_order WHERE order_reference = ANY($3::text[])),
                  now()""",
        -(-orders // ID_BLOCK),
        -(-items // ID_BLOCK),
        references,
    )
    return Reserved(ids_of_blocks(row[0], orders), ids_of_blocks(row[1], items), set(row[2]), row[3])


def ids_of_blocks(starts: list[int], count: int) -> list[int]:
    """The first `count` ids of the blocks that start at `starts` (in the order they were reserved)."""
    return list(islice(chain.from_iterable(range(start, start + ID_BLOCK) for start in starts), count))


async def write_timeouts(conn: AsyncConnection, order_id: int, timeouts: list[Timeout], entered_at: datetime) -> None:
    await write_plans(conn, [(order_id, Plan(timeouts=timeouts))], entered_at)


async def write_plan(conn: AsyncConnection, order_id: int, plan: Plan, now: datetime) -> None:
    await write_plans(conn, [(order_id, plan)], now)


async def write_plans(conn: AsyncConnection, plans: list[tuple[int, Plan]], now: datetime) -> None:
    """Final states, history, timeouts, condition checks and command log of the plans of many orders: one
    statement for the item states and one per kind of record, whatever the number of orders and items.
    Timeouts of the states items left need no deleting: a timeout applies to the items still in its state since
    its entry time. The orders are locked (lock_order): their groups are rewritten."""
    order_ids: list[int] = []
    moved: list[tuple[tuple[int, int], ...]] = []
    states: list[str] = []
    for order_id, plan in plans:
        for state, ranges in ranges_by_state(plan.changed):
            order_ids.append(order_id)
            moved.append(ranges)
            states.append(state)
    if order_ids:
        await conn.execute(_MOVE_ITEMS, {"order_id": order_ids, "item_ids": moved, "state": states, "now": now})
    await record_plans(conn, plans, now)


async def put_into_shipments(conn: AsyncConnection, changes: Sequence[tuple[int, Sequence[int], int]]) -> None:
    """Put items of locked orders (lock_orders) into shipments: (order id, item ids, shipment id), the item sets of
    one order disjoint; their state and entry time stay. One statement for all: an order of 10,000 shipments
    announced one by one costs a pass over its groups per batch, not per shipment."""
    if changes:
        await conn.execute(
            _ASSIGN_SHIPMENTS,
            {
                "order_id": [order_id for order_id, _, _ in changes],
                "item_ids": [ranges_of(sorted(ids)) for _, ids, _ in changes],
                "shipment_id": [shipment_id for _, _, shipment_id in changes],
            },
        )


def _regroup(key: str, key_type: str, joined: str, moved: str) -> TextClause:
    """The statement that rewrites item groups for changes (order_id, item_ids, `key`), given as arrays: the groups
    of an order that hold changed items are deleted, and with them the groups the changed items join (`joined`,
    over a group `g` and the order's changes `m`, whose `keys` are the changes' `key` values); what stays of each
    goes back, and the changed items with their new columns (`moved`: state, entry time and shipment, over an old
    group `o` and a change `c`), regrouped so that items alike are one group. The item sets of one order's changes
    are disjoint."""
    return text(
        f"""WITH change AS (
               SELECT * FROM unnest(CAST(:order_id AS bigint[]), CAST(:item_ids AS int8multirange[]),
                                    CAST(:{key} AS {key_type}[])) AS c(order_id, item_ids, {key})
           ), moved AS (
               SELECT order_id, range_agg(item_ids) AS item_ids, array_agg({key}) AS keys FROM change GROUP BY order_id
           ), old AS (
               DELETE FROM order_state.sales_order_item_group g USING moved m
               WHERE g.order_id = m.order_id AND (g.item_ids && m.item_ids OR {joined})
               RETURNING g.order_id, g.item_ids, g.state, g.state_changed_at, g.shipment_id, m.item_ids AS moved
           ), pieces AS (
               SELECT order_id, item_ids - moved AS item_ids, state, state_changed_at, shipment_id FROM old
               UNION ALL
               SELECT o.order_id, o.item_ids * c.item_ids, {moved}
               FROM old o JOIN change c ON c.order_id = o.order_id AND o.item_ids && c.item_ids
           )
           INSERT INTO order_state.sales_order_item_group (order_id, item_ids, state, state_changed_at, shipment_id)
           SELECT order_id, range_agg(item_ids), state, state_changed_at, shipment_id FROM pieces
           WHERE NOT isempty(item_ids)
           GROUP BY order_id, state, state_changed_at, shipment_id"""
    )


# Items moved to new states, entered now: they join the groups already in their new state since now.
_MOVE_ITEMS = _regroup(
    "state",
    "text",
    joined="g.state_changed_at = CAST(:now AS timestamptz) AND g.state = ANY(m.keys)",
    moved="c.state, CAST(:now AS timestamptz), o.shipment_id",
)
# Items put into shipments, their state and entry time kept: they join the groups already in their shipment.
_ASSIGN_SHIPMENTS = _regroup(
    "shipment_id",
    "bigint",
    joined="g.shipment_id = ANY(m.keys)",
    moved="o.state, o.state_changed_at, c.shipment_id",
)


_RECORD_HISTORY = text(
    """INSERT INTO order_state.sales_order_item_state_history
           (order_id, item_ids, item_count, from_state, to_state, event, changed_at)
       SELECT * FROM unnest(CAST(:order_id AS bigint[]), CAST(:item_ids AS int8multirange[]),
                            CAST(:item_count AS int[]), CAST(:from_state AS text[]), CAST(:to_state AS text[]),
                            CAST(:event AS text[]), CAST(:changed_at AS timestamptz[]))"""
)
_RECORD_TIMEOUTS = text(
    """INSERT INTO order_state.state_timeout (order_id, state, event, entered_at, due_at)
       SELECT * FROM unnest(CAST(:order_id AS bigint[]), CAST(:state AS text[]), CAST(:event AS text[]),
                            CAST(:entered_at AS timestamptz[]), CAST(:due_at AS timestamptz[]))
       ON CONFLICT DO NOTHING"""
)
_RECORD_CHECKS = text(
    """INSERT INTO order_state.state_condition_check (order_id, state, entered_at, next_check_at)
       SELECT * FROM unnest(CAST(:order_id AS bigint[]), CAST(:state AS text[]),
                            CAST(:entered_at AS timestamptz[]), CAST(:next_check_at AS timestamptz[]))
       ON CONFLICT DO NOTHING"""
)
_RECORD_COMMANDS = text(
    """INSERT INTO order_state.transition_log
           (order_id, event, command, source_state, target_state, item_ids, item_count, error, created_at)
       SELECT * FROM unnest(CAST(:order_id AS bigint[]), CAST(:event AS text[]), CAST(:command AS text[]),
                            CAST(:source_state AS text[]), CAST(:target_state AS text[]),
                            CAST(:item_ids AS int8multirange[]), CAST(:item_count AS int[]),
                            CAST(:error AS text[]), CAST(:created_at AS timestamptz[]))"""
)


HISTORY_COLUMNS = ("order_id", "item_ids", "item_count", "from_state", "to_state", "event", "changed_at")
TIMEOUT_COLUMNS = ("order_id", "state", "event", "due_at", "entered_at")
CHECK_COLUMNS = ("order_id", "state", "entered_at", "next_check_at")
COMMAND_COLUMNS = (
    "order_id",
    "event",
    "command",
    "source_state",
    "target_state",
    "item_ids",
    "item_count",
    "error",
    "created_at",
)


def ranges_by_state(states: dict[int, str]) -> list[tuple[str, tuple[tuple[int, int], ...]]]:
    """Items given as id -> state, as each state with its items' ids as an int8multirange (see ranges_of)."""
    by_state: dict[str, list[int]] = defaultdict(list)
    for item_id, state in states.items():
        by_state[state].append(item_id)
    return [(state, ranges_of(sorted(ids))) for state, ids in by_state.items()]


def ranges_of(item_ids: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """Ids as an int8multirange: [1, 2, 3, 7] -> ((1, 3), (7, 7)), each pair a range with both bounds included
    (how asyncpg reads a pair; PostgreSQL stores them as [1,4), [7,8)). A tuple: in an array of multiranges,
    asyncpg would take a list for a dimension of the array."""
    return tuple(to_ranges(item_ids))


async def record_plans(
    conn: AsyncConnection,
    plans: list[tuple[int, Plan]],
    now: datetime,
    *,
    entries: list[tuple[int, Sequence[int], str]] | None = None,
    new_orders: bool = False,
    began: datetime | None = None,
) -> None:
    """Everything of the plans but the item states: history, timeouts, condition checks and command log,
    one statement per kind of record for all orders. `entries` are items just created: (order id, item ids,
    initial state), recorded in the history before the moves. With `new_orders` (orders created in this
    transaction: nothing of theirs can exist yet) the rows go in with COPY; then, when `now` is `began` (the
    transaction's start), the rows leave their times to the columns' default, `now()`, the same moment: the
    driver spends 1-2 us of Python on every timestamp it encodes (migration 0010)."""
    stamped = not (new_orders and now == began)
    stamp = (now,) if stamped else ()
    history: list[tuple[Any, ...]] = [
        (order_id, ranges_of(ids), len(ids), None, state, None, *stamp) for order_id, ids, state in entries or ()
    ]
    timeouts: list[tuple[Any, ...]] = []
    checks: list[tuple[Any, ...]] = []
    commands: list[tuple[Any, ...]] = []
    for order_id, plan in plans:
        history += [
            (order_id, ranges_of(move.item_ids), len(move.item_ids), move.source, move.target, move.event, *stamp)
            for move in plan.moves
        ]
        timeouts += [(order_id, timeout.state, timeout.event, timeout.due_at, *stamp) for timeout in plan.timeouts]
        checks += [(order_id, state, *stamp, *stamp) for state in plan.condition_checks]
        commands += [
            (
                order_id,
                run.event,
                run.command,
                run.source,
                run.target,
                ranges_of(run.item_ids),
                len(run.item_ids),
                run.error,
                *stamp,
            )
            for run in plan.commands
        ]
    # The times are each table's last columns (as many as the stamps a row has).
    for table, columns, times, rows, statement in (
        ("sales_order_item_state_history", HISTORY_COLUMNS, 1, history, _RECORD_HISTORY),
        ("state_timeout", TIMEOUT_COLUMNS, 1, timeouts, _RECORD_TIMEOUTS),
        ("state_condition_check", CHECK_COLUMNS, 2, checks, _RECORD_CHECKS),
        ("transition_log", COMMAND_COLUMNS, 1, commands, _RECORD_COMMANDS),
    ):
        if not rows:
            continue
        if new_orders:
            await copy_rows(conn, SCHEMA, table, columns if stamped else columns[:-times], rows)
        else:  # timeouts and checks may exist already: the statements skip those
            await conn.execute(statement, dict(zip(columns, map(list, zip(*rows, strict=True)), strict=True)))
