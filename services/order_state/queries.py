"""Read models for people: the order matrix and the order page."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger

from services.order_state.process_catalog import ProcessCatalog

BUCKETS = ("under_1_day", "1_to_7_days", "older")


@dataclass
class MatrixRow:
    process: str
    state: str
    under_1_day: int
    days_1_to_7: int
    older: int

    @property
    def total(self) -> int:
        return self.under_1_day + self.days_1_to_7 + self.older

    def as_dict(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "state": self.state,
            "under_1_day": self.under_1_day,
            "1_to_7_days": self.days_1_to_7,
            "older": self.older,
            "total": self.total,
        }


async def order_matrix(conn: AsyncConnection, now: datetime, catalog: ProcessCatalog | None = None) -> list[MatrixRow]:
    """Items per process x state, by time since their last state change."""
    result = await conn.execute(
        text(
            """SELECT o.process_name AS process, g.state,
                      CAST(coalesce(sum(g.n) FILTER (WHERE g.state_changed_at > b.day), 0) AS bigint)
                          AS under_1_day,
                      CAST(coalesce(sum(g.n) FILTER (WHERE g.state_changed_at <= b.day
                                                      AND g.state_changed_at > b.week), 0) AS bigint)
                          AS days_1_to_7,
                      CAST(coalesce(sum(g.n) FILTER (WHERE g.state_changed_at <= b.week), 0) AS bigint) AS older
               FROM (SELECT order_id, state, state_changed_at,
                            (SELECT sum(upper(span) - lower(span)) FROM unnest(item_ids) span) AS n
                     FROM order_state.sales_order_item_group) g
               JOIN order_state.sales_order o ON o.id = g.order_id
               CROSS JOIN (SELECT CAST(:now AS timestamptz) - interval '1 day' AS day,
                                  CAST(:now AS timestamptz) - interval '7 days' AS week) b
               GROUP BY o.process_name, g.state"""
        ),
        {"now": now},
    )
    rows = [MatrixRow(**row._mapping) for row in result]

    def order_key(row: MatrixRow) -> tuple[str, int, str]:
        process = catalog.processes.get(row.process) if catalog else None
        position = list(process.states).index(row.state) if process and row.state in process.states else 10_000
        return (row.process, position, row.state)

    return sorted(rows, key=order_key)


@dataclass
class HistoryEntry:
    at: datetime
    from_state: str | None
    to_state: str
    event: str | None


@dataclass
class ItemView:
    id: int
    sku: str
    quantity: int
    state: str
    state_changed_at: datetime
    shipment_id: int | None
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass
class OrderPage:
    order: dict[str, Any]
    items_by_state: dict[str, list[ItemView]]
    item_count_by_state: dict[str, int]
    possible_events: dict[str, list[str]]
    manual_events: dict[str, list[str]]
    command_log: list[dict[str, Any]]
    shown_per_state: int


async def order_page(
    conn: AsyncConnection, reference: str, catalog: ProcessCatalog | None, *, items_per_state: int = 50
) -> OrderPage | None:
    order = (
        await conn.execute(
            text(
                """SELECT id, order_reference, custom_order_reference, store, locale, currency, process_name,
                          payment_method, customer->>'email' AS customer_email, customer_reference,
                          totals, placed_at, created_at
                   FROM order_state.sales_order WHERE order_reference = :r"""
            ),
            {"r": reference},
        )
    ).first()
    if order is None:
        return None
    counts = {
        row.state: row.n
        for row in await conn.execute(
            text(
                """SELECT g.state, CAST(sum(upper(span) - lower(span)) AS bigint) AS n
                   FROM order_state.sales_order_item_group g CROSS JOIN LATERAL unnest(g.item_ids) span
                   WHERE g.order_id = :o GROUP BY g.state"""
            ),
            {"o": order.id},
        )
    }
    items = (
        await conn.execute(
            text(
                """SELECT id, sku, quantity, state, state_changed_at, shipment_id FROM (
                       SELECT *, row_number() OVER (PARTITION BY state ORDER BY id) AS n
                       FROM order_state.sales_order_item WHERE order_id = :o) ranked
                   WHERE n <= :limit ORDER BY state, id"""
            ),
            {"o": order.id, "limit": items_per_state},
        )
    ).all()
    views = {row.id: ItemView(**row._mapping) for row in items}
    if views:
        history = await conn.execute(
            text(
                """SELECT item_id, changed_at, from_state, to_state, event FROM order_state.item_state_history
                   WHERE order_id = :o AND item_id = ANY(:ids) ORDER BY change_id"""
            ).bindparams(bindparam("ids", type_=ARRAY(BigInteger))),
            {"o": order.id, "ids": list(views)},
        )
        for row in history:
            views[row.item_id].history.append(HistoryEntry(row.changed_at, row.from_state, row.to_state, row.event))
    by_state: dict[str, list[ItemView]] = defaultdict(list)
    for view in views.values():
        by_state[view.state].append(view)
    process = catalog.processes.get(order.process_name) if catalog else None
    possible = {state: process.events_from(state) if process else [] for state in counts}
    manual = {state: process.manual_events(state) if process else [] for state in counts}
    log = [
        dict(row._mapping)
        for row in await conn.execute(
            text(
                """SELECT created_at, event, command, source_state, target_state, item_count AS items, error
                   FROM order_state.transition_log WHERE order_id = :o ORDER BY id"""
            ),
            {"o": order.id},
        )
    ]
    return OrderPage(
        order={key: value for key, value in order._mapping.items() if key != "id"},
        items_by_state=dict(by_state),
        item_count_by_state=counts,
        possible_events=possible,
        manual_events=manual,
        command_log=log,
        shown_per_state=items_per_state,
    )
