"""order_state's message handlers: thin, set-based."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic_core import to_json
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
    RefusedItem,
    ShipmentCreated,
    ShipmentSplit,
    to_ranges,
)
from schemas.envelope import Cause, Event, caused_by, new_event_id, no_control_characters
from services.order_state.domain.process.engine import Plan
from services.order_state.domain.process.model import INITIAL_STATE, State
from services.order_state.domain.process.plugins import ItemFacts, OrderFacts
from services.order_state.domain.splitting import ItemSplit, split_line
from services.order_state.item_events import fire, publish_outcome
from services.order_state.process_catalog import ProcessCatalog, UnknownProcess
from services.order_state.state_store import (
    copy_rows,
    load_items,
    lock_order,
    record_plans,
    reserve_item_ids,
)
from services.order_state.tables import sales_order, sales_order_item
from services.runtime.consumer import Incoming
from services.runtime.documents import Document
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

LINE_COLUMNS = (
    "order_id",
    "line_number",
    "sku",
    "name",
    "quantity",
    "unit_price",
    "tax_rate",
    "is_quantity_splittable",
    "shipment",
)
ITEM_COLUMNS = ("id", "order_id", "line_number", "sku", "quantity", "state", "state_changed_at")


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
    uow: UnitOfWork, incoming: Sequence[Incoming[Document]], catalog: ProcessCatalog, now: datetime | None = None
) -> None:
    """Store each placed order with its lines and items, publish `order.created`, and let the process take
    the items from their initial state (onEnter events, timeouts). order.placed is the busiest topic: orders
    arrive as documents (dicts checked by the OrderPlaced contract, see services.runtime.documents), items
    are planned before they are written and go in once, in their final state, with COPY."""
    now = now or datetime.now(UTC)
    processes: dict[str, str] = {}
    placed: list[Incoming[Document]] = []
    for item in incoming:
        order = item.event
        try:
            processes[order["order_reference"]] = catalog.choose(order["process_name"], order["payment_method"])
        except UnknownProcess as exc:
            uow.dead_letter(item.record, str(exc))
            continue
        placed.append(item)
    if not placed:
        return
    # Columns as arrays, one INSERT ... SELECT unnest(...) for the whole batch: no per-row SQL to build.
    columns: dict[str, list[Any]] = defaultdict(list)
    documents: dict[str, tuple[bytes, bytes, bytes]] = {}  # JSON kept for order.created too
    for item in placed:
        order = item.event
        customer, billing, totals = (
            to_json(order["customer"]),
            to_json(order["billing_address"]),
            to_json(order["totals"]),
        )
        documents[order["order_reference"]] = (customer, billing, totals)
        columns["order_reference"].append(order["order_reference"])
        columns["custom_order_reference"].append(order["custom_order_reference"])
        columns["store"].append(order["store"])
        columns["locale"].append(order["locale"])
        columns["currency"].append(order["currency"])
        columns["price_mode"].append(order["price_mode"])
        columns["customer_reference"].append(order["customer"]["customer_reference"])
        columns["customer"].append(customer.decode())
        columns["billing_address"].append(billing.decode())
        columns["payment_method"].append(order["payment_method"])
        columns["process_name"].append(processes[order["order_reference"]])
        columns["totals"].append(totals.decode())
        columns["placed_at"].append(order["placed_at"] or order["occurred_at"])
        columns["placed_event_id"].append(order["event_id"])
    stored = await uow.conn.execute(INSERT_ORDERS, columns)
    order_ids = {reference: order_id for order_id, reference in stored}

    accepted: list[tuple[int, Document]] = []
    for item in placed:
        reference = item.event["order_reference"]
        order_id = order_ids.pop(reference, None)
        if order_id is None:
            uow.dead_letter(
                item.record, f"order reference {reference!r} is already taken by another order.placed event"
            )
        else:
            accepted.append((order_id, item.event))
    if not accepted:
        return

    threshold = catalog.settings.split_threshold
    lines: list[tuple[Any, ...]] = []
    splits: list[list[ItemSplit]] = []
    shipments: list[list[bytes]] = []
    for order_id, order in accepted:
        order_splits = []
        order_shipments = []
        last_shipment, shipment, shipment_text = None, b"", ""
        for number, line in enumerate(order["lines"], start=1):
            split = split_line(
                line["quantity"],
                is_quantity_splittable=line["is_quantity_splittable"],
                threshold=threshold,
                is_bundle=line["is_bundle"],
            )
            if split.count * split.quantity_each != line["quantity"]:
                # Never store half an order: the transaction rolls back and the message is dead-lettered.
                raise PermanentError(
                    f"line {number} of order {order['order_reference']}: items add up to "
                    f"{split.count * split.quantity_each}, not the ordered {line['quantity']}"
                )
            order_splits.append(split)
            if line["shipment"] != last_shipment:  # most orders ship every line to one address
                last_shipment, shipment = line["shipment"], to_json(line["shipment"])
                shipment_text = shipment.decode()
            order_shipments.append(shipment)
            lines.append(
                (
                    order_id,
                    number,
                    line["sku"],
                    line["name"],
                    line["quantity"],
                    line["unit_price"],
                    line["tax_rate"],
                    line["is_quantity_splittable"],
                    shipment_text,
                )
            )
        splits.append(order_splits)
        shipments.append(order_shipments)
    await copy_rows(uow.conn, "sales_order_line", LINE_COLUMNS, lines)

    reserved = await reserve_item_ids(uow.conn, sum(split.count for order in splits for split in order))
    items: dict[str, list[Any]] = defaultdict(list)
    plans: list[tuple[int, Plan]] = []
    entries: list[tuple[int, list[int], str]] = []
    taken = 0
    for (order_id, order), order_splits, order_shipments in zip(accepted, splits, shipments, strict=True):
        line_ids: list[list[int]] = []
        facts: list[ItemFacts] = []
        for line, split in zip(order["lines"], order_splits, strict=True):
            ids = reserved[taken : taken + split.count]
            taken += split.count
            line_ids.append(ids)
            sku, quantity = line["sku"], split.quantity_each
            facts += [ItemFacts(item_id, sku, quantity, INITIAL_STATE) for item_id in ids]
        reference, process_name, cause = order["order_reference"], processes[order["order_reference"]], caused_by(order)
        known = OrderFacts(
            order_id,
            reference,
            order["custom_order_reference"],
            order["store"],
            process_name,
            order["payment_method"],
            order["currency"],
            order["totals"]["grand_total"],
            order["placed_at"] or order["occurred_at"],
            order["customer"]["customer_reference"],
            cause["correlation_id"],
        )
        plan = catalog.engine(process_name).enter(known, facts, now)
        plans.append((order_id, plan))
        entries.append((order_id, [item_id for ids in line_ids for item_id in ids], INITIAL_STATE))
        final = plan.final_states
        for number, (line, split, ids) in enumerate(zip(order["lines"], order_splits, line_ids, strict=True), start=1):
            items["id"] += ids
            items["order_id"] += [order_id] * split.count
            items["line_number"] += [number] * split.count
            items["sku"] += [line["sku"]] * split.count
            items["quantity"] += [split.quantity_each] * split.count
            items["state"] += [final[item_id] for item_id in ids]
        event_id = new_event_id()
        created = order_created_json(
            order,
            event_id,
            cause,
            process_name,
            order_splits,
            line_ids,
            now,
            (*documents[reference], order_shipments),
        )
        uow.publish_serialized(OrderCreated.TOPIC, reference, event_id, created)
        publish_outcome(uow, known, process_name, plan.moves[0].event if plan.moves else None, plan, cause)
    items["state_changed_at"] = [now] * len(items["id"])
    rows = zip(*(items[column] for column in ITEM_COLUMNS), strict=True)
    await copy_rows(uow.conn, "sales_order_item", ITEM_COLUMNS, rows)
    await record_plans(uow.conn, plans, now, entries=entries)  # the whole batch of orders in a few statements
    log.info("stored %d orders", len(accepted))


def order_created_json(
    order: Document,
    event_id: uuid.UUID,
    cause: Cause,
    process_name: str,
    splits: list[ItemSplit],
    line_ids: list[list[int]],
    now: datetime,
    serialized: tuple[bytes, bytes, bytes, list[bytes]] | None = None,
) -> bytes:
    """`order.created` as its contract's JSON, straight from the order.placed document: no OrderCreated
    object built only to be serialised. `serialized` is what placement already turned into JSON for its own
    tables (customer, billing address, totals, each line's shipment), spliced in rather than serialised
    twice. tests/unit/test_documents.py holds the result to the contract."""
    customer, billing, totals, shipments = serialized or (
        to_json(order["customer"]),
        to_json(order["billing_address"]),
        to_json(order["totals"]),
        [to_json(line["shipment"]) for line in order["lines"]],
    )
    head = to_json(
        {
            "event_id": event_id,
            "event_type": OrderCreated.TOPIC,
            "schema_version": OrderCreated.SCHEMA_VERSION,
            "occurred_at": now,
            "order_reference": order["order_reference"],
            "custom_order_reference": order["custom_order_reference"],
            **cause,
            "store": order["store"],
            "locale": order["locale"],
            "currency": order["currency"],
            "price_mode": order["price_mode"],
            "process_name": process_name,
            "payment_method": order["payment_method"],
            "initial_state": INITIAL_STATE,
            "placed_at": order["placed_at"] or order["occurred_at"],
        }
    )
    lines = b",".join(
        to_json(
            {
                "line_number": number,
                "sku": line["sku"],
                "name": line["name"],
                "quantity": line["quantity"],
                "unit_price": line["unit_price"],
                "tax_rate": line["tax_rate"],
                "is_quantity_splittable": line["is_quantity_splittable"],
                "is_bundle": line["is_bundle"],
                "item_id_ranges": to_ranges(ids),
                "item_count": split.count,
                "item_quantity": split.quantity_each,
            }
        )[:-1]
        + b',"shipment":'
        + shipment
        + b"}"
        for number, (line, split, ids, shipment) in enumerate(
            zip(order["lines"], splits, line_ids, shipments, strict=True), start=1
        )
    )
    return b"".join(
        (
            head[:-1],
            b',"customer":',
            customer,
            b',"billing_address":',
            billing,
            b',"totals":',
            totals,
            b',"lines":[',
            lines,
            b"]}",
        )
    )


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
