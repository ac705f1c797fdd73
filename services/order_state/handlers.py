"""order_state's message handlers: thin, set-based."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import repeat
from typing import Any

import msgspec
from sqlalchemy import update

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
    load_items,
    lock_order,
    lock_orders,
    put_into_shipments,
    ranges_by_state,
    ranges_of,
    record_plans,
    reserve_ids,
)
from services.order_state.tables import SCHEMA, sales_order
from services.runtime.consumer import Incoming
from services.runtime.db import copy_rows
from services.runtime.errors import PermanentError
from services.runtime.json_codec import dump_json, encode_json
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.wire import Document

log = logging.getLogger(__name__)

_NO_STATE = State("(unknown)")

ORDER_COLUMNS = (
    "id",
    "order_reference",
    "custom_order_reference",
    "store",
    "locale",
    "currency",
    "price_mode",
    "customer_reference",
    "customer",
    "billing_address",
    "payment_method",
    "process_name",
    "totals",
    "lines",
    "shipments",
    "placed_at",
    "placed_event_id",
)
GROUP_COLUMNS = ("order_id", "item_ids", "state", "state_changed_at")


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


@dataclass
class _Placement:
    """One order.placed on its way in: how its lines split, its item ids, its JSON parts."""

    incoming: Incoming[Document]
    process_name: str
    splits: list[ItemSplit] = field(default_factory=list)
    line_ids: list[Sequence[int]] = field(default_factory=list)  # a range when the ids are consecutive
    item_ids: Sequence[int] = ()  # all of them, line after line: a range too when consecutive
    parts: dict[str, bytes] = field(default_factory=dict)  # customer, billing_address, totals, lines as JSON

    @property
    def order(self) -> Document:
        return self.incoming.event


async def place_orders(
    uow: UnitOfWork, incoming: Sequence[Incoming[Document]], catalog: ProcessCatalog, now: datetime | None = None
) -> None:
    """Store each placed order with its items, publish `order.created`, and let the process take the items
    from their initial state (onEnter events, timeouts). order.placed is the busiest topic: orders arrive as
    structs checked by the OrderPlaced contract (see services.runtime.wire); the order is one
    row that keeps its lines as placed (with their item id ranges); items are planned before they are
    written and go in once, in their final state, with COPY; each part is serialised to JSON once, for the
    table and for order.created alike."""
    placements: list[_Placement] = []
    for item in incoming:
        order = item.event
        try:
            process_name = catalog.choose(order.process_name, order.payment_method)
        except UnknownProcess as exc:
            uow.dead_letter(item.record, str(exc))
            continue
        placements.append(_Placement(item, process_name))
    if not placements:
        return

    threshold = catalog.settings.split_threshold
    for placement in placements:
        order = placement.order
        for number, line in enumerate(order.lines, start=1):
            split = split_line(
                line.quantity,
                is_quantity_splittable=line.is_quantity_splittable,
                threshold=threshold,
                is_bundle=line.is_bundle,
            )
            if split.count * split.quantity_each != line.quantity:
                # Never store half an order: the transaction rolls back and the message is dead-lettered.
                raise PermanentError(
                    f"line {number} of order {order.order_reference}: items add up to "
                    f"{split.count * split.quantity_each}, not the ordered {line.quantity}"
                )
            placement.splits.append(split)

    # Ids first (orders and items: the lines keep their items' id ranges, items go in in their final state),
    # which references stored orders already have, and the transaction's start, in one round trip.
    order_ids, reserved, taken_references, began = await reserve_ids(
        uow.conn,
        len(placements),
        sum(split.count for p in placements for split in p.splits),
        [p.order.order_reference for p in placements],
    )
    # The items enter their state when the transaction began: the rows leave that time to the columns' default
    # (`now()`), which saves the driver encoding a timestamp per item (1-2 us of Python each).
    now = now or began
    stamped = now != began  # a time given by the caller (tests) is written out
    stamp = (now,) if stamped else ()
    taken = 0
    order_rows: list[tuple[Any, ...]] = []
    stored: list[tuple[_Placement, int]] = []
    for placement, order_id in zip(placements, order_ids, strict=True):
        order = placement.order
        first = taken
        for split in placement.splits:
            placement.line_ids.append(consecutive(reserved, taken, split.count))
            taken += split.count
        # One range for the order's items (nearly always): the engine, the history and item.state_changed then
        # take its id ranges without a look at each id.
        placement.item_ids = consecutive(reserved, first, taken - first)
        reference = order.order_reference
        if reference in taken_references:  # by a stored order, or by an earlier one of this batch
            uow.dead_letter(
                placement.incoming.record,
                f"order reference {reference!r} is already taken by another order.placed event",
            )
            continue
        taken_references.add(reference)
        parts = placement.parts
        parts["customer"] = encode_json(order.customer)
        parts["billing_address"] = encode_json(order.billing_address)
        parts["totals"] = encode_json(order.totals)
        parts["lines"], kept_lines, shipments = lines_json(order, placement.splits, placement.line_ids)
        order_rows.append(
            (
                order_id,
                reference,
                order.custom_order_reference,
                order.store,
                order.locale,
                order.currency,
                order.price_mode,
                order.customer.customer_reference,
                parts["customer"].decode(),
                parts["billing_address"].decode(),
                order.payment_method,
                placement.process_name,
                parts["totals"].decode(),
                kept_lines.decode(),
                shipments.decode(),
                order.placed_at or order.occurred_at,
                order.event_id,
            )
        )
        stored.append((placement, order_id))
    if not stored:
        return
    # COPY: the references are known to be free. Another replica storing the same reference at this moment
    # makes the COPY fail on the unique index; the batch is then retried one order at a time, and the order
    # that came second is dead-lettered by the check above.
    await copy_rows(uow.conn, SCHEMA, "sales_order", ORDER_COLUMNS, order_rows)

    item_rows: list[tuple[Any, ...]] = []
    plans: list[tuple[int, Plan]] = []
    entries: list[tuple[int, Sequence[int], str]] = []
    for placement, order_id in stored:
        order = placement.order
        reference = order.order_reference
        item_ids = placement.item_ids
        first_line = order.lines[0]
        sample = ItemFacts(item_ids[0], first_line.sku, placement.splits[0].quantity_each, INITIAL_STATE)
        cause = caused_by(order)
        known = OrderFacts(
            order_id,
            reference,
            order.custom_order_reference,
            order.store,
            placement.process_name,
            order.payment_method,
            order.currency,
            order.totals.grand_total,
            order.placed_at or order.occurred_at,
            order.customer.customer_reference,
            cause["correlation_id"],
        )
        plan = catalog.engine(placement.process_name).enter_new(
            known, item_ids, sample, partial(_item_facts, order, placement), now
        )
        plans.append((order_id, plan))
        entries.append((order_id, item_ids, INITIAL_STATE))
        # The items as groups (tables.sales_order_item_group): one row when they all end up in one state, as every
        # order placed does in the shipped processes.
        finals = plan.final_states
        if len(set(finals.values())) == 1:
            item_rows.append((order_id, ranges_of(item_ids), finals[item_ids[0]], *stamp))
        else:
            item_rows += [(order_id, ranges, state, *stamp) for state, ranges in ranges_by_state(finals)]
        event_id = new_event_id()
        created = order_created_json(order, event_id, cause, placement.process_name, now, placement.parts)
        uow.publish_serialized(OrderCreated.TOPIC, reference, event_id, created)
        publish_outcome(uow, known, placement.process_name, plan.moves[0].event if plan.moves else None, plan, cause)
    if not plans:
        return
    await copy_rows(
        uow.conn, SCHEMA, "sales_order_item_group", GROUP_COLUMNS if stamped else GROUP_COLUMNS[:-1], item_rows
    )
    # A few statements in all, the times left to the database as for the items.
    await record_plans(uow.conn, plans, now, entries=entries, new_orders=True, began=began)
    log.info("stored %d orders", len(plans))


def _item_facts(order: Document, placement: _Placement) -> list[ItemFacts]:
    """The new items of a placed order, for an onEnter chain that decides item by item."""
    facts: list[ItemFacts] = []
    for line, split, ids in zip(order.lines, placement.splits, placement.line_ids, strict=True):
        facts += map(ItemFacts, ids, repeat(line.sku), repeat(split.quantity_each), repeat(INITIAL_STATE))
    return facts


def consecutive(reserved: list[int], start: int, count: int) -> Sequence[int]:
    """`reserved[start : start + count]`, as a range when those ids are consecutive (as they nearly always are):
    its id ranges are then known without looking at each id. Ids from one nextval() statement only increase."""
    first, last = reserved[start], reserved[start + count - 1]
    return range(first, last + 1) if last - first == count - 1 else reserved[start : start + count]


class _CreatedLine(msgspec.Struct, gc=False):
    """A line of order.created (its contract: schemas.OrderLine), or of the order row with `shipment` an index,
    written by msgspec: a struct's keys are encoded once for the class, a dict's for every line (3 us less for an
    ordinary order's five lines)."""

    line_number: int
    sku: str
    name: str
    quantity: int
    unit_price: int
    tax_rate: float
    is_quantity_splittable: bool
    is_bundle: bool
    item_id_ranges: list[tuple[int, int]]
    item_count: int
    item_quantity: int
    shipment: Any


def lines_json(order: Document, splits: list[ItemSplit], line_ids: list[Sequence[int]]) -> tuple[bytes, bytes, bytes]:
    """The order's lines, each as placed with its items as id ranges: as order.created carries them (each line
    with its shipment), and as the order row keeps them (each line's `shipment` the index of its shipment in the
    row's `shipments`, which holds each distinct shipment once), with those shipments. An ordinary order's five
    lines share one shipment: its row keeps the shipment once instead of five times (see migration 0015). A
    shipment the lines share (one struct: services.runtime.wire) is encoded once."""
    by_struct: dict[int, int] = {}
    by_json: dict[bytes, int] = {}
    shipments: list[msgspec.Raw] = []
    lines: list[_CreatedLine] = []
    for number, (line, split, ids) in enumerate(zip(order.lines, splits, line_ids, strict=True), start=1):
        at = by_struct.get(id(line.shipment))
        if at is None:
            written = encode_json(line.shipment)
            at = by_json.get(written)
            if at is None:
                at = by_json[written] = len(shipments)
                shipments.append(msgspec.Raw(written))
            by_struct[id(line.shipment)] = at
        lines.append(
            _CreatedLine(
                number,
                line.sku,
                line.name,
                line.quantity,
                line.unit_price,
                line.tax_rate,
                line.is_quantity_splittable,
                line.is_bundle,
                to_ranges(ids),
                split.count,
                split.quantity_each,
                at,
            )
        )
    kept = encode_json(lines)
    for created in lines:
        created.shipment = shipments[created.shipment]
    return encode_json(lines), kept, encode_json(shipments)


def order_created_json(
    order: Document, event_id: uuid.UUID, cause: Cause, process_name: str, now: datetime, parts: dict[str, bytes]
) -> bytes:
    """`order.created` as its contract's JSON, straight from the order.placed document: no OrderCreated
    object built only to be serialised. `parts` are the JSON placement already made for the order row
    (customer, billing_address, totals, lines), spliced in rather than serialised twice.
    tests/unit/test_documents.py holds the result to the contract."""
    head = dump_json(
        {
            "event_id": event_id,
            "event_type": OrderCreated.TOPIC,
            "schema_version": OrderCreated.SCHEMA_VERSION,
            "occurred_at": now,
            "order_reference": order.order_reference,
            "custom_order_reference": order.custom_order_reference,
            **cause,
            "store": order.store,
            "locale": order.locale,
            "currency": order.currency,
            "price_mode": order.price_mode,
            "process_name": process_name,
            "payment_method": order.payment_method,
            "initial_state": INITIAL_STATE,
            "placed_at": order.placed_at or order.occurred_at,
        }
    )
    spliced = [head[:-1]]
    for name in ("customer", "billing_address", "totals", "lines"):
        spliced += (b',"', name.encode(), b'":', parts[name])
    return b"".join(spliced) + b"}"


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
    # The batch's orders are locked first, in one statement (their item groups are rewritten). The facts then
    # go in as few statements as their items allow: one for all, unless a fact moves items an earlier one of the
    # batch placed (a split after a creation), which must see that one done first.
    order_ids = await lock_orders(uow.conn, [incoming.event.order_reference for incoming in facts])
    pending: list[tuple[int, list[int], int]] = []
    placed: dict[int, set[int]] = defaultdict(set)
    for incoming in facts:
        fact = incoming.event
        shipment_id = fact.shipment_id if isinstance(fact, ShipmentCreated) else fact.to_shipment_id
        order_id = order_ids.get(fact.order_reference)
        if order_id is None:
            log.warning("%s for unknown order %s ignored", fact.event_type, fact.order_reference)
            continue
        item_ids = list(fact.item_ids)
        if not placed[order_id].isdisjoint(item_ids):
            await put_into_shipments(uow.conn, pending)
            pending, placed = [], defaultdict(set)
        pending.append((order_id, item_ids, shipment_id))
        placed[order_id].update(item_ids)
    await put_into_shipments(uow.conn, pending)


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
