"""Fires process events on items of one order and records the outcome: the service layer of the engine."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from schemas import ItemStateChanged, to_ranges
from schemas.envelope import Cause, Event, new_event_id
from services.order_state.domain.process.engine import Plan
from services.order_state.domain.process.plugins import ItemFacts, OrderFacts
from services.order_state.process_catalog import ProcessCatalog
from services.order_state.state_store import OrderRow, write_plan
from services.runtime.json_codec import dump_json
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def _correlation(cause: Event | Cause | None) -> Cause:
    if cause is None:
        return {}
    return cause if isinstance(cause, dict) else cause.caused()


def publish_outcome(
    uow: UnitOfWork,
    order: OrderRow | OrderFacts,
    process_name: str,
    event: str | None,
    plan: Plan,
    cause: Event | Cause | None,
) -> None:
    """`item.state_changed` for the items the plan moved (one event, the changes grouped by from/to state),
    then the events its commands emitted, all correlated with `cause`."""
    correlation = _correlation(cause)
    groups = plan.state_changes()
    if groups:
        event_id = new_event_id()
        # Serialised straight from a dict (it is written for every order placed); the placement tests
        # (tests/integration/test_placement_rules.py) hold it to the ItemStateChanged contract.
        value = dump_json(
            {
                "event_id": event_id,
                "event_type": ItemStateChanged.TOPIC,
                "schema_version": ItemStateChanged.SCHEMA_VERSION,
                "occurred_at": datetime.now(UTC),
                "order_reference": order.order_reference,
                "custom_order_reference": order.custom_order_reference,
                "correlation_id": correlation.get("correlation_id"),
                "causation_id": correlation.get("causation_id"),
                "process_name": process_name,
                "event": event,
                "changes": [
                    {"from_state": source, "to_state": target, "item_id_ranges": to_ranges(ids)}
                    for (source, target), ids in sorted(groups.items())
                ],
            }
        )
        uow.publish_serialized(ItemStateChanged.TOPIC, order.order_reference, event_id, value)
    for emitted in plan.emitted:
        if cause is not None:
            emitted = emitted.model_copy(update=correlation)
        uow.publish(emitted)


async def fire(
    uow: UnitOfWork,
    catalog: ProcessCatalog,
    order: OrderRow,
    items: list[ItemFacts],
    event: str | None,
    now: datetime,
    *,
    refuse: bool = True,
    all_or_nothing: bool = False,
    cause: Event | None = None,
) -> Plan:
    """Apply `event` to `items` (all of `order`, whose row the caller has locked), write and publish.
    With `all_or_nothing`, a plan that refuses any item (see `Plan.refusals`) is returned unwritten."""
    engine = catalog.engine(order.process_name)
    correlation = (cause.correlation_id or cause.event_id) if cause is not None else None
    plan = engine.apply(order.facts(correlation), items, event, now, refuse=refuse)
    if all_or_nothing and plan.refusals():
        return plan
    await write_plan(uow.conn, order.id, plan, now)
    publish_outcome(uow, order, order.process_name, event, plan, cause)
    if plan.changed:
        log.info("%s: %s moved %d items", order.order_reference, event or "(no event)", len(plan.changed))
    return plan
