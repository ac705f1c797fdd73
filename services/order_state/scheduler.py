"""Fires due timeouts and re-checks transitions without an event.

Each order is handled in its own transaction under its row lock (taken with SKIP LOCKED), and the
timeout rows it fires are deleted in that transaction: several schedulers (replicas) never fire the
same timeout twice, and a timeout whose transaction did not commit stays due, so a restart loses
nothing. The clock is injectable so tests can move time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.order_state.item_events import fire
from services.order_state.process_catalog import ProcessCatalog
from services.order_state.state_store import load_items, lock_order
from services.runtime.errors import is_transient
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        catalog: ProcessCatalog,
        outbox: Table,
        *,
        clock: Clock = system_clock,
        batch_size: int = 1_000,
        condition_interval: timedelta = timedelta(seconds=10),
        service: str = "order_state",
    ) -> None:
        self.condition_interval = condition_interval
        self.engine = engine
        self.catalog = catalog
        self.outbox = outbox
        self.clock = clock
        self.batch_size = batch_size
        self.service = service

    async def fire_due_timeouts(self) -> int:
        """One pass: fire every timeout due now. Returns how many (item, event) timeouts fired."""
        now = self.clock()
        orders = await self._orders_due("state_timeout", "due_at", now)
        fired = 0
        for order_id in orders:
            fired += await self._fire_order_timeouts(order_id, now)
        return fired

    async def _orders_due(self, table: str, column: str, now: datetime) -> list[int]:
        """Orders with something due in `table` (the oldest first, at most one batch), without locking:
        each order is then taken under its own row lock."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text(
                    f"""SELECT DISTINCT order_id FROM (
                            SELECT order_id FROM order_state.{table}
                            WHERE {column} <= :now ORDER BY {column} LIMIT :limit) due"""
                ),
                {"now": now, "limit": self.batch_size},
            )
            return list(result.scalars())

    async def _fire_order_timeouts(self, order_id: int, now: datetime) -> int:
        async with self.engine.begin() as conn:
            order = await lock_order(conn, order_id=order_id, skip_locked=True)
            if order is None:  # another scheduler has it right now
                return 0
            due = (
                await conn.execute(
                    text(
                        """DELETE FROM order_state.state_timeout
                           WHERE order_id = :order_id AND due_at <= :now
                           RETURNING state, event, entered_at"""
                    ),
                    {"order_id": order_id, "now": now},
                )
            ).all()
            if not due:
                return 0
            uow = UnitOfWork(conn, self.outbox, self.service)
            for row in sorted(due, key=lambda row: row.entered_at):
                # Only the items still in the state they entered then: whoever left has no timeout any more.
                items = await load_items(conn, order_id, state=row.state, entered_at=row.entered_at)
                if items:
                    await fire(uow, self.catalog, order, items, row.event, now, refuse=False)
            await uow.flush()
            return len(due)

    async def check_conditions(self) -> int:
        """One pass over the groups of items waiting in states with transitions without an event whose
        next check is due. Returns the number of items moved."""
        now = self.clock()
        orders = await self._orders_due("state_condition_check", "next_check_at", now)
        moved = 0
        for order_id in orders:
            async with self.engine.begin() as conn:
                order = await lock_order(conn, order_id=order_id, skip_locked=True)
                if order is None:
                    continue
                checks = (
                    await conn.execute(
                        text(
                            """SELECT id, state, entered_at FROM order_state.state_condition_check
                               WHERE order_id = :order_id AND next_check_at <= :now ORDER BY entered_at"""
                        ),
                        {"order_id": order_id, "now": now},
                    )
                ).all()
                uow = UnitOfWork(conn, self.outbox, self.service)
                for check in checks:
                    items = await load_items(conn, order_id, state=check.state, entered_at=check.entered_at)
                    left = 0
                    if items:
                        plan = await fire(uow, self.catalog, order, items, None, now, refuse=False)
                        left = len(plan.changed)
                        moved += left
                    if left == len(items):
                        statement = "DELETE FROM order_state.state_condition_check WHERE id = :id"
                        params: dict[str, object] = {"id": check.id}
                    else:
                        statement = "UPDATE order_state.state_condition_check SET next_check_at = :next WHERE id = :id"
                        params = {"id": check.id, "next": now + self.condition_interval}
                    await conn.execute(text(statement), params)
                await uow.flush()
        return moved

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                busy = await self.fire_due_timeouts() + await self.check_conditions()
                backoff = 0.5
            except Exception as exc:
                transient = is_transient(exc)
                log.log(
                    logging.WARNING if transient else logging.ERROR,
                    "scheduler pass failed, retrying in %.1fs: %s",
                    backoff,
                    exc,
                    exc_info=not transient,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)
