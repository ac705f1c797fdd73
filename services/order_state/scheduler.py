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
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import Text

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
        service: str = "order_state",
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.outbox = outbox
        self.clock = clock
        self.batch_size = batch_size
        self.service = service

    async def fire_due_timeouts(self) -> int:
        """One pass: fire every timeout due now. Returns how many (item, event) timeouts fired."""
        now = self.clock()
        async with self.engine.connect() as conn:
            orders = (
                (
                    await conn.execute(
                        text(
                            """SELECT DISTINCT order_id FROM (
                               SELECT order_id FROM order_state.sales_order_item_timeout
                               WHERE due_at <= :now ORDER BY due_at LIMIT :limit) due"""
                        ),
                        {"now": now, "limit": self.batch_size},
                    )
                )
                .scalars()
                .all()
            )
        fired = 0
        for order_id in orders:
            fired += await self._fire_order_timeouts(order_id, now)
        return fired

    async def _fire_order_timeouts(self, order_id: int, now: datetime) -> int:
        async with self.engine.begin() as conn:
            order = await lock_order(conn, order_id=order_id, skip_locked=True)
            if order is None:  # another scheduler has it right now
                return 0
            due = (
                await conn.execute(
                    text(
                        """DELETE FROM order_state.sales_order_item_timeout
                           WHERE order_id = :order_id AND due_at <= :now
                           RETURNING item_id, event, state"""
                    ),
                    {"order_id": order_id, "now": now},
                )
            ).all()
            if not due:
                return 0
            by_event: dict[str, dict[int, str]] = defaultdict(dict)
            for row in due:
                by_event[row.event][row.item_id] = row.state
            uow = UnitOfWork(conn, self.outbox, self.service)
            for event, expected in by_event.items():
                items = [
                    item
                    for item in await load_items(conn, order_id, item_ids=list(expected))
                    if item.state == expected[item.id]
                ]
                if items:
                    await fire(uow, self.catalog, order, items, event, now, refuse=False)
            await uow.flush()
            return len(due)

    async def check_conditions(self) -> int:
        """One pass over items in states with transitions without an event. Returns items moved."""
        now = self.clock()
        moved = 0
        for name, process in self.catalog.processes.items():
            states = sorted(process.states_with_eventless_transitions)
            if not states:
                continue
            async with self.engine.connect() as conn:
                orders = (
                    (
                        await conn.execute(
                            text(
                                """SELECT DISTINCT i.order_id FROM order_state.sales_order_item i
                               JOIN order_state.sales_order o ON o.id = i.order_id
                               WHERE o.process_name = :process AND i.state = ANY(:states)"""
                            ).bindparams(bindparam("states", type_=ARRAY(Text))),
                            {"process": name, "states": states},
                        )
                    )
                    .scalars()
                    .all()
                )
            for order_id in orders:
                async with self.engine.begin() as conn:
                    order = await lock_order(conn, order_id=order_id, skip_locked=True)
                    if order is None:
                        continue
                    items = [
                        i
                        for i in await load_items(conn, order_id)
                        if i.state in process.states_with_eventless_transitions
                    ]
                    uow = UnitOfWork(conn, self.outbox, self.service)
                    plan = await fire(uow, self.catalog, order, items, None, now, refuse=False)
                    await uow.flush()
                    moved += len(plan.changed)
        return moved

    async def run(self, stop: asyncio.Event, timeout_interval: float, condition_interval: float) -> None:
        last_condition_check = 0.0
        loop = asyncio.get_running_loop()
        backoff = 0.5
        while not stop.is_set():
            try:
                fired = await self.fire_due_timeouts()
                if loop.time() - last_condition_check >= condition_interval:
                    await self.check_conditions()
                    last_condition_check = loop.time()
                backoff = 0.5
            except Exception as exc:
                level = logging.WARNING if is_transient(exc) else logging.ERROR
                log.log(
                    level, "scheduler pass failed, retrying in %.1fs: %s", backoff, exc, exc_info=not is_transient(exc)
                )
                fired = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if fired < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=timeout_interval)
