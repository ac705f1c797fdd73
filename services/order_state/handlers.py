"""order_state's message handlers: thin, set-based."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update

from schemas import (
    CancelRefusedItem,
    OrderCanceled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderCreated,
    OrderCustomReferenceChanged,
    OrderCustomReferenceUpdateRejected,
    OrderCustomReferenceUpdateRequested,
    OrderItemEventRejected,
    OrderItemEventRequested,
    OrderLine,
    OrderPlaced,
    RefusedItem,
    ShipmentCreated,
    ShipmentSplit,
    to_ranges,
)
from schemas.envelope import Event, no_control_characters
from services.order_state.domain.process.engine import Plan
from services.order_state.domain.process.model import INITIAL_STATE, State
from services.order_state.domain.process.plugins import ItemFacts
from services.order_state.domain.splitting import ItemSplit, split_line
from services.order_state.item_events import fire, publish_outcome
from services.order_state.process_catalog import ProcessCatalog, UnknownProcess
from services.order_state.state_store import OrderRow, load_items, lock_order, record_entry, write_plans
from services.order_state.tables import sales_order, sales_order_item
from services.runtime.consumer import Incoming
from services.runtime.errors import PermanentError
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

_NO_STATE = State("(unknown)")

INSERT_ORDERS = text(
    """
    INSERT INTO order_state.sales_order (order_reference, custom_order_reference, store, locale, currency,
        price_mode, customer_reference, customer, billing_address, payment_method, process_name, totals,
        placed_at, placed_event_id)
    SELECT * FROM unnest(CAST(:order_reference AS text[]), CAST(:custom_order_reference AS text[]),
        CAST(:store AS text[]), CAST(:locale AS text[]), CAST(:currency AS text[]), CAST(:price_mode AS text[]),
        CAST(:customer_reference AS text[]), CAST(:customer AS jsonb[]), CAST(:billing_address AS jsonb[]),
        CAST(:payment_method AS text[]), CAST(:process_name AS text[]), CAST(:totals AS jsonb[]),
        CAST(:placed_at AS timestamptz[]), CAST(:placed_event_id AS uuid[]))
    ON CONFLICT (order_reference) DO NOTHING
    RETURNING id, order_reference
    """
)

INSERT_LINES = text(
    """
    INSERT INTO order_state.sales_order_line (order_id, line_number, sku, name, quantity, unit_price, tax_rate,
        is_quantity_splittable, shipment)
    SELECT * FROM unnest(CAST(:order_id AS bigint[]), CAST(:line_number AS int[]), CAST(:sku AS text[]),
        CAST(:name AS text[]), CAST(:quantity AS int[]), CAST(:unit_price AS bigint[]), CAST(:tax_rate AS numeric[]),
        CAST(:is_quantity_splittable AS boolean[]), CAST(:shipment AS jsonb[]))
    """
)

INSERT_ITEMS = text(
    """
    WITH created AS (
        INSERT INTO order_state.sales_order_item (order_id, line_number, sku, quantity, state, state_changed_at)
        SELECT l.order_id, l.line_number, l.sku, l.quantity_each, :state, :now
        FROM unnest(CAST(:order_ids AS bigint[]), CAST(:line_numbers AS int[]), CAST(:skus AS text[]),
                    CAST(:counts AS int[]), CAST(:quantities AS int[]))
             AS l(order_id, line_number, sku, item_count, quantity_each)
        CROSS JOIN LATERAL generate_series(1, l.item_count) AS u(n)
        ORDER BY l.order_id, l.line_number, u.n
        RETURNING id, order_id, line_number
    )
    SELECT order_id, line_number, array_agg(id ORDER BY id) AS ids FROM created GROUP BY order_id, line_number
    """
)


def publish_rejection(
    uow: UnitOfWork, rejection: type[Event], request: Event, reason: str, message: str, **fields: Any
) -> None:
    """Answer a request that is refused: nothing changed, and the answer says why (`reason` for machines,
    `message` for people)."""
    log.info("%s for %s refused (%s): %s", request.event_type, request.order_reference, reason, message)
    uow.publish(
        rejection(
            **request.caused(),
            order_reference=request.order_reference,
            custom_order_reference=request.custom_order_reference,
            reason=reason,
            message=message,
            **fields,
        )
    )


async def place_orders(
    uow: UnitOfWork, incoming: Sequence[Incoming[OrderPlaced]], catalog: ProcessCatalog, now: datetime | None = None
) -> None:
    """Store each placed order with its lines and items in the initial state, publish `order.created`,
    then let the process take the items from there (onEnter events, timeouts)."""
    now = now or datetime.now(UTC)
    processes: dict[str, str] = {}
    placed: list[Incoming[OrderPlaced]] = []
    for item in incoming:
        try:
            processes[item.event.order_reference] = catalog.choose(item.event.process_name, item.event.payment_method)
        except UnknownProcess as exc:
            uow.dead_letter(item.record, str(exc))
            continue
        placed.append(item)
    if not placed:
        return
    # Columns as arrays, one INSERT ... SELECT unnest(...) for the whole batch: no per-row SQL to build.
    columns: dict[str, list[Any]] = defaultdict(list)
    for item in placed:
        order = item.event
        columns["order_reference"].append(order.order_reference)
        columns["custom_order_reference"].append(order.custom_order_reference)
        columns["store"].append(order.store)
        columns["locale"].append(order.locale)
        columns["currency"].append(order.currency)
        columns["price_mode"].append(order.price_mode)
        columns["customer_reference"].append(order.customer.customer_reference)
        columns["customer"].append(order.customer.model_dump_json())
        columns["billing_address"].append(order.billing_address.model_dump_json())
        columns["payment_method"].append(order.payment_method)
        columns["process_name"].append(processes[order.order_reference])
        columns["totals"].append(order.totals.model_dump_json())
        columns["placed_at"].append(order.placed_at or order.occurred_at)
        columns["placed_event_id"].append(order.event_id)
    stored = await uow.conn.execute(INSERT_ORDERS, columns)
    order_ids = {reference: order_id for order_id, reference in stored}

    accepted: list[tuple[int, Incoming[OrderPlaced]]] = []
    for item in placed:
        order_id = order_ids.pop(item.event.order_reference, None)
        if order_id is None:
            uow.dead_letter(
                item.record,
                f"order reference {item.event.order_reference!r} is already taken by another order.placed event",
            )
        else:
            accepted.append((order_id, item))
    if not accepted:
        return

    threshold = catalog.settings.split_threshold
    lines: dict[str, list[Any]] = defaultdict(list)
    splits: dict[tuple[int, int], ItemSplit] = {}
    split_order_ids, split_lines, split_skus, split_counts, split_quantities = [], [], [], [], []
    for order_id, item in accepted:
        for number, line in enumerate(item.event.lines, start=1):
            lines["order_id"].append(order_id)
            lines["line_number"].append(number)
            lines["sku"].append(line.sku)
            lines["name"].append(line.name)
            lines["quantity"].append(line.quantity)
            lines["unit_price"].append(line.unit_price)
            lines["tax_rate"].append(line.tax_rate)
            lines["is_quantity_splittable"].append(line.is_quantity_splittable)
            lines["shipment"].append(line.shipment.model_dump_json())
            split = splits[(order_id, number)] = split_line(
                line.quantity,
                is_quantity_splittable=line.is_quantity_splittable,
                threshold=threshold,
                is_bundle=line.is_bundle,
            )
            split_order_ids.append(order_id)
            split_lines.append(number)
            split_skus.append(line.sku)
            split_counts.append(split.count)
            split_quantities.append(split.quantity_each)
    await uow.conn.execute(INSERT_LINES, lines)

    # All items of all orders in the batch in one statement: one row per unit of a split line.
    created = await uow.conn.execute(
        INSERT_ITEMS,
        {
            "order_ids": split_order_ids,
            "line_numbers": split_lines,
            "skus": split_skus,
            "counts": split_counts,
            "quantities": split_quantities,
            "state": INITIAL_STATE,
            "now": now,
        },
    )
    # One row per line with its item ids as an array: no Python work per item row.
    item_ids: dict[tuple[int, int], list[int]] = defaultdict(list)
    for order_id, line_number, ids in created.all():
        item_ids[(order_id, line_number)] = ids
    for order_id, item in accepted:
        for number, line in enumerate(item.event.lines, start=1):
            stored_quantity = len(item_ids[(order_id, number)]) * splits[(order_id, number)].quantity_each
            if stored_quantity != line.quantity:
                # Never store half an order: the transaction rolls back and the message is dead-lettered.
                raise PermanentError(
                    f"line {number} of order {item.event.order_reference}: items add up to {stored_quantity}, "
                    f"not the ordered {line.quantity}"
                )
    await record_entry(uow.conn, [order_id for order_id, _ in accepted], INITIAL_STATE, now)

    for order_id, item in accepted:
        order = item.event
        uow.publish(
            # Built from a validated order.placed: construct without validating every field a second time.
            OrderCreated.model_construct(
                **order.caused(),
                order_reference=order.order_reference,
                custom_order_reference=order.custom_order_reference,
                store=order.store,
                locale=order.locale,
                currency=order.currency,
                price_mode=order.price_mode,
                customer=order.customer,
                billing_address=order.billing_address,
                process_name=processes[order.order_reference],
                payment_method=order.payment_method,
                initial_state=INITIAL_STATE,
                totals=order.totals,
                placed_at=order.placed_at or order.occurred_at,
                lines=[
                    OrderLine.model_construct(
                        line_number=number,
                        sku=line.sku,
                        name=line.name,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        tax_rate=line.tax_rate,
                        is_quantity_splittable=line.is_quantity_splittable,
                        shipment=line.shipment,
                        is_bundle=line.is_bundle,
                        item_id_ranges=to_ranges(item_ids[(order_id, number)]),
                        item_count=len(item_ids[(order_id, number)]),
                        item_quantity=splits[(order_id, number)].quantity_each,
                    )
                    for number, line in enumerate(order.lines, start=1)
                ],
            )
        )
    log.info("stored %d orders", len(accepted))

    plans: list[tuple[int, Plan]] = []
    for order_id, item in accepted:
        order = item.event
        facts = [
            ItemFacts(item_id, line.sku, splits[(order_id, number)].quantity_each, INITIAL_STATE)
            for number, line in enumerate(order.lines, start=1)
            for item_id in item_ids[(order_id, number)]
        ]
        row = OrderRow(
            id=order_id,
            order_reference=order.order_reference,
            custom_order_reference=order.custom_order_reference,
            store=order.store,
            process_name=processes[order.order_reference],
            payment_method=order.payment_method,
            currency=order.currency,
            grand_total=order.totals.grand_total,
            placed_at=order.placed_at or order.occurred_at,
            customer_reference=order.customer.customer_reference,
            created_at=now,
        )
        plan = catalog.engine(row.process_name).enter(row.facts(order.correlation_id or order.event_id), facts, now)
        plans.append((order_id, plan))
        publish_outcome(uow, row, row.process_name, plan.moves[0].event if plan.moves else None, plan, order)
    await write_plans(uow.conn, plans, now)  # the whole batch of orders in a few statements


async def trigger_item_events(
    uow: UnitOfWork, requests: Sequence[Incoming[OrderItemEventRequested]], catalog: ProcessCatalog
) -> None:
    """Manual events for a whole order, one shipment or chosen items. What cannot be done is answered
    with `order.item_event_rejected` naming each refused item and why; nothing changes for those items."""
    for incoming in requests:
        request = incoming.event
        now = datetime.now(UTC)

        def reject(
            reason: str,
            message: str,
            refused: list[RefusedItem] | None = None,
            request: OrderItemEventRequested = request,
        ) -> None:
            publish_rejection(
                uow, OrderItemEventRejected, request, reason, message, event=request.event, refused_items=refused or []
            )

        order = await lock_order(uow.conn, reference=request.order_reference)
        if order is None:
            reject("unknown_order", f"there is no order {request.order_reference!r}")
            continue
        process = catalog.engine(order.process_name).process
        if request.event not in process.events:
            reject("unknown_event", f"process {order.process_name} has no event {request.event!r}")
            continue
        items = await load_items(uow.conn, order.id, item_ids=request.item_ids, shipment_id=request.shipment_id)
        refused: list[RefusedItem] = []
        if request.item_ids is not None:
            found = {item.id for item in items}
            refused += [
                RefusedItem(item_id=item_id, state=None, reason=f"item {item_id} is not an item of this order")
                for item_id in request.item_ids
                if item_id not in found
            ]
        if request.shipment_id is not None and not items:
            reject("unknown_shipment", f"order {order.order_reference} has no items in shipment {request.shipment_id}")
            continue
        plan = await fire(uow, catalog, order, items, request.event, now, refuse=True, cause=request)
        refused += [RefusedItem(item_id=r.item_id, state=r.state, reason=r.reason) for r in plan.refusals()]
        if refused:
            reject(
                "not_possible",
                f"event {request.event!r} was refused for {len(refused)} of "
                f"{len(items) + sum(1 for r in refused if r.state is None)} items",
                sorted(refused, key=lambda r: r.item_id),
            )


async def apply_fact(uow: UnitOfWork, facts: Sequence[Incoming[Event]], catalog: ProcessCatalog, event: str) -> None:
    """A fact from another service fires the configured event on the order's items that can take it
    (its `item_ids` or `shipment_id` narrow it down). Items that cannot take it are left as they are."""
    for incoming in facts:
        fact = incoming.event
        order = await lock_order(uow.conn, reference=fact.order_reference)
        if order is None:
            log.warning("%s for unknown order %s ignored", fact.event_type, fact.order_reference)
            continue
        item_ids = getattr(fact, "item_ids", None) or None
        shipment_id = getattr(fact, "shipment_id", None) if item_ids is None else None
        items = await load_items(uow.conn, order.id, item_ids=item_ids, shipment_id=shipment_id)
        await fire(uow, catalog, order, items, event, datetime.now(UTC), refuse=False, cause=fact)


async def assign_shipments(
    uow: UnitOfWork, facts: Sequence[Incoming[ShipmentCreated]] | Sequence[Incoming[ShipmentSplit]]
) -> None:
    """Learn from shipping which shipment each item is in (at placement and after splits), so events can
    be triggered per shipment."""
    for incoming in facts:
        fact = incoming.event
        shipment_id = fact.shipment_id if isinstance(fact, ShipmentCreated) else fact.to_shipment_id
        await uow.conn.execute(
            update(sales_order_item)
            .where(
                sales_order_item.c.id.in_(fact.item_ids),
                sales_order_item.c.order_id
                == select(sales_order.c.id)
                .where(sales_order.c.order_reference == fact.order_reference)
                .scalar_subquery(),
            )
            .values(shipment_id=shipment_id)
        )


async def update_custom_references(
    uow: UnitOfWork, requests: Sequence[Incoming[OrderCustomReferenceUpdateRequested]]
) -> None:
    """The back office sets or clears an order's custom reference; every later event carries the new one."""
    for incoming in requests:
        request = incoming.event

        def reject(reason: str, message: str, request: Event = request) -> None:
            publish_rejection(uow, OrderCustomReferenceUpdateRejected, request, reason, message)

        if request.requested_by_role != "back_office":
            reject("back_office_only", "only the back office may change a custom order reference")
            continue
        value = request.value
        if value is not None:
            if not value.strip():
                reject("empty", "a custom order reference cannot be empty; clear it instead")
                continue
            if len(value) > 255:
                reject("too_long", f"a custom order reference has at most 255 characters, this one has {len(value)}")
                continue
            try:
                no_control_characters(value)
            except ValueError as exc:
                reject("control_characters", f"a custom order reference {exc}")
                continue
        order = await lock_order(uow.conn, reference=request.order_reference)
        if order is None:
            reject("unknown_order", f"there is no order {request.order_reference!r}")
            continue
        if order.custom_order_reference == value:
            continue
        await uow.conn.execute(
            update(sales_order).where(sales_order.c.id == order.id).values(custom_order_reference=value)
        )
        uow.publish(
            OrderCustomReferenceChanged(
                **request.caused(),
                order_reference=order.order_reference,
                custom_order_reference=value,
                old_value=order.custom_order_reference,
                new_value=value,
                requested_by=request.requested_by,
            )
        )


async def cancel_orders(
    uow: UnitOfWork, requests: Sequence[Incoming[OrderCancelRequested]], catalog: ProcessCatalog, settings: Settings
) -> None:
    """Customers cancel their whole order within the window while every item is in a cancellable state;
    the back office cancels a whole order, a shipment or chosen items whenever the states allow. All or
    nothing: a refusal is `order.cancel_rejected` with a machine-readable reason, and nothing changes."""
    for incoming in requests:
        request = incoming.event
        now = datetime.now(UTC)

        def reject(
            reason: str, message: str, refused: list[CancelRefusedItem] | None = None, request: Event = request
        ) -> None:
            publish_rejection(uow, OrderCancelRejected, request, reason, message, refused_items=refused or [])

        order = await lock_order(uow.conn, reference=request.order_reference)
        if order is None:
            reject("unknown_order", f"there is no order {request.order_reference!r}")
            continue
        process = catalog.engine(order.process_name).process
        everything = await load_items(uow.conn, order.id)
        if request.requested_by_role == "customer":
            if request.item_ids is not None or request.shipment_id is not None:
                reject("whole_order_only", "a customer cancels the whole order only")
                continue
            if not request.customer_reference or request.customer_reference != order.customer_reference:
                reject(
                    "not_your_order",
                    f"order {order.order_reference} is not an order of customer {request.customer_reference!r}",
                )
                continue
            window = timedelta(minutes=settings.customer_cancellation_window_minutes)
            if now - order.placed_at > window:
                reject(
                    "window_expired",
                    f"a customer can cancel within {settings.customer_cancellation_window_minutes:g} minutes of "
                    f"placement; order {order.order_reference} was placed at {order.placed_at:%Y-%m-%d %H:%M} UTC",
                )
                continue
            stuck = [item for item in everything if not (process.states.get(item.state) or _NO_STATE).cancellable]
            if stuck:
                reject(
                    "not_cancellable_state",
                    f"{len(stuck)} of {len(everything)} items are no longer in a cancellable state",
                    [
                        CancelRefusedItem(item_id=i.id, state=i.state, reason=f'state "{i.state}" is not cancellable')
                        for i in stuck
                    ],
                )
                continue
            items = everything
        elif request.item_ids is not None:
            by_id = {item.id: item for item in everything}
            unknown = [item_id for item_id in request.item_ids if item_id not in by_id]
            if unknown:
                reject(
                    "unknown_items",
                    f"not items of order {order.order_reference}: {', '.join(map(str, unknown))}",
                    [CancelRefusedItem(item_id=i, state=None, reason="not an item of this order") for i in unknown],
                )
                continue
            items = [by_id[item_id] for item_id in dict.fromkeys(request.item_ids)]
        elif request.shipment_id is not None:
            items = await load_items(uow.conn, order.id, shipment_id=request.shipment_id)
            if not items:
                reject("unknown_items", f"order {order.order_reference} has no items in shipment {request.shipment_id}")
                continue
        else:
            items = everything
        plan = await fire(uow, catalog, order, items, settings.cancel_event, now, all_or_nothing=True, cause=request)
        refused = [CancelRefusedItem(item_id=r.item_id, state=r.state, reason=r.reason) for r in plan.refusals()]
        if refused:
            reject(
                "not_cancellable_state",
                f"{len(refused)} of {len(items)} items cannot be canceled in their current state",
                sorted(refused, key=lambda item: item.item_id),
            )
            continue
        canceled = sorted(plan.changed)
        uow.publish(
            OrderCanceled(
                **request.caused(),
                order_reference=order.order_reference,
                custom_order_reference=order.custom_order_reference,
                requested_by_role=request.requested_by_role,
                reason=request.reason,
                item_id_ranges=to_ranges(canceled),
                whole_order=len(canceled) == len(everything),
            )
        )
