"""Reading and writing item states: set-based, a handful of statements whatever the number of items."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import BigInteger

from services.order_state.domain.process.engine import Plan, Timeout
from services.order_state.domain.process.plugins import ItemFacts, OrderFacts

_IDS = bindparam("ids", type_=ARRAY(BigInteger))

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


async def load_items(
    conn: AsyncConnection, order_id: int, *, item_ids: list[int] | None = None, shipment_id: int | None = None
) -> list[ItemFacts]:
    sql = "SELECT id, sku, quantity, state FROM order_state.sales_order_item WHERE order_id = :order_id"
    params: dict[str, Any] = {"order_id": order_id}
    statement = text(sql)
    if item_ids is not None:
        statement = text(sql + " AND id = ANY(:ids)").bindparams(_IDS)
        params["ids"] = item_ids
    elif shipment_id is not None:
        statement = text(sql + " AND shipment_id = :shipment_id")
        params["shipment_id"] = shipment_id
    rows = (await conn.execute(statement, params)).all()
    return [ItemFacts(id=row.id, sku=row.sku, quantity=row.quantity, state=row.state) for row in rows]


async def record_entry(conn: AsyncConnection, order_ids: list[int], state: str, now: datetime) -> None:
    """History rows for newly created items (from no state into the initial one)."""
    await conn.execute(
        text(
            """INSERT INTO order_state.sales_order_item_state_history (item_id, from_state, to_state, event, changed_at)
               SELECT id, NULL, :state, NULL, :now FROM order_state.sales_order_item WHERE order_id = ANY(:ids)"""
        ).bindparams(_IDS),
        {"ids": order_ids, "state": state, "now": now},
    )


async def write_timeouts(conn: AsyncConnection, order_id: int, timeouts: list[Timeout]) -> None:
    for timeout in timeouts:
        await conn.execute(
            text(
                """INSERT INTO order_state.sales_order_item_timeout (item_id, event, order_id, state, due_at)
                   SELECT unnest(:ids), :event, :order_id, :state, :due_at
                   ON CONFLICT (item_id, event) DO UPDATE SET state = excluded.state, due_at = excluded.due_at"""
            ).bindparams(_IDS),
            {
                "ids": timeout.item_ids,
                "event": timeout.event,
                "order_id": order_id,
                "state": timeout.state,
                "due_at": timeout.due_at,
            },
        )


async def write_plan(conn: AsyncConnection, order_id: int, plan: Plan, now: datetime) -> None:
    """Final states, history, timeouts and command log of a plan: a few statements per distinct state."""
    changed = plan.changed
    by_state: dict[str, list[int]] = defaultdict(list)
    for item_id, state in changed.items():
        by_state[state].append(item_id)
    for state, ids in by_state.items():
        await conn.execute(
            text(
                "UPDATE order_state.sales_order_item SET state = :state, state_changed_at = :now WHERE id = ANY(:ids)"
            ).bindparams(_IDS),
            {"ids": ids, "state": state, "now": now},
        )
    for move in plan.moves:
        await conn.execute(
            text(
                """INSERT INTO order_state.sales_order_item_state_history
                       (item_id, from_state, to_state, event, changed_at)
                   SELECT unnest(:ids), :source, :target, :event, :now"""
            ).bindparams(_IDS),
            {"ids": move.item_ids, "source": move.source, "target": move.target, "event": move.event, "now": now},
        )
    if changed:
        await conn.execute(
            text("DELETE FROM order_state.sales_order_item_timeout WHERE item_id = ANY(:ids)").bindparams(_IDS),
            {"ids": list(changed)},
        )
    await write_timeouts(conn, order_id, plan.timeouts)
    if plan.commands:
        await conn.execute(
            text(
                """INSERT INTO order_state.transition_log
                       (order_id, event, command, source_state, target_state, item_ids, error, created_at)
                   VALUES (:order_id, :event, :command, :source, :target, :ids, :error, :now)"""
            ).bindparams(_IDS),
            [
                {
                    "order_id": order_id,
                    "event": run.event,
                    "command": run.command,
                    "source": run.source,
                    "target": run.target,
                    "ids": run.item_ids,
                    "error": run.error,
                    "now": now,
                }
                for run in plan.commands
            ],
        )
