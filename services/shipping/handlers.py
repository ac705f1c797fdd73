"""shipping's message handlers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert

from schemas import (
    Address,
    ItemStateChanged,
    Money,
    OrderCreated,
    OrderCustomReferenceChanged,
    ShipmentCreated,
    ShipmentMethod,
    ShipmentSplit,
    ShipmentSplitRejected,
    ShipmentSplitRequested,
    ShipmentUpdated,
    to_ranges,
)
from schemas.envelope import Event
from services.runtime.consumer import Incoming
from services.runtime.db import any_id
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork
from services.shipping.domain.grouping import ShipmentGroup, group_items, shipment_key
from services.shipping.domain.splitting import Placement, StateMap, decide_split, shipment_status
from services.shipping.tables import item_state, shipment, shipment_item

log = logging.getLogger(__name__)


async def create_shipments(uow: UnitOfWork, created: Sequence[Incoming[OrderCreated]], settings: Settings) -> None:
    """One shipment per distinct address + method + requested delivery date of each new order."""
    planned: dict[tuple[str, str], tuple[OrderCreated, ShipmentGroup]] = {}
    for item in created:
        order = item.event
        for group in group_items(order.lines, split_delivery=settings.split_delivery_enabled):
            planned[(order.order_reference, group.key)] = (order, group)
    if not planned:
        return
    stored = await uow.conn.execute(
        insert(shipment)
        .values(
            [
                {
                    "order_reference": order.order_reference,
                    "custom_order_reference": order.custom_order_reference,
                    "group_key": group.key,
                    "address": group.shipment.address.model_dump(mode="json"),
                    "method_key": group.shipment.method.key,
                    "method": group.shipment.method.model_dump(mode="json"),
                    "requested_delivery_date": group.shipment.requested_delivery_date,
                    "expense_amount": group.shipment.method.price,
                    "currency": order.currency,
                }
                for order, group in planned.values()
            ]
        )
        .on_conflict_do_nothing(constraint="uq_shipment_order_group")
        .returning(shipment.c.id, shipment.c.order_reference, shipment.c.group_key)
    )
    new = [(shipment_id, *planned[(reference, key)]) for shipment_id, reference, key in stored]
    item_ids: list[int] = []
    shipment_ids: list[int] = []
    references: list[str] = []
    for shipment_id, order, group in new:
        item_ids.extend(group.item_ids)
        shipment_ids.extend([shipment_id] * len(group.item_ids))
        references.extend([order.order_reference] * len(group.item_ids))
    if item_ids:  # one statement for all items of the batch, however many
        await uow.conn.execute(
            text(
                """INSERT INTO shipping.shipment_item (item_id, shipment_id, order_reference)
                   SELECT * FROM unnest(CAST(:items AS bigint[]), CAST(:shipments AS bigint[]),
                                        CAST(:references AS text[]))
                   ON CONFLICT DO NOTHING"""
            ),
            {"items": item_ids, "shipments": shipment_ids, "references": references},
        )
    for shipment_id, order, group in new:
        uow.publish(
            ShipmentCreated(
                **order.caused(),
                order_reference=order.order_reference,
                custom_order_reference=order.custom_order_reference,
                shipment_id=shipment_id,
                address=group.shipment.address,
                method=group.shipment.method,
                requested_delivery_date=group.shipment.requested_delivery_date,
                expense=Money(amount=group.shipment.method.price, currency=order.currency),
                item_id_ranges=to_ranges(group.item_ids),
            )
        )
    log.info("created %d shipments", len(new))


def state_map(settings: Settings) -> StateMap:
    return StateMap(
        shipped=frozenset(settings.shipped_states),
        delivered=frozenset(settings.delivered_states),
        canceled=frozenset(settings.canceled_states),
    )


def _updated(row: Any, item_ids: list[int], status: str, cause: Event, *, removed: bool = False) -> ShipmentUpdated:
    return ShipmentUpdated(
        **cause.caused(),
        order_reference=row.order_reference,
        custom_order_reference=row.custom_order_reference,
        shipment_id=row.id,
        status=status,  # type: ignore[arg-type]
        address=Address.model_validate(row.address),
        method=ShipmentMethod.model_validate(row.method),
        requested_delivery_date=row.requested_delivery_date,
        expense=Money(amount=row.expense_amount, currency=row.currency),
        item_id_ranges=to_ranges(item_ids),
        removed=removed,
    )


async def _items_of(uow: UnitOfWork, shipment_ids: list[int]) -> dict[int, list[tuple[int, str | None]]]:
    result = await uow.conn.execute(
        select(shipment_item.c.shipment_id, shipment_item.c.item_id, item_state.c.state)
        .select_from(shipment_item.outerjoin(item_state, item_state.c.item_id == shipment_item.c.item_id))
        .where(shipment_item.c.shipment_id == any_id(shipment_ids))
        .order_by(shipment_item.c.item_id)
    )
    items: dict[int, list[tuple[int, str | None]]] = {shipment_id: [] for shipment_id in shipment_ids}
    for shipment_id, item_id, state in result:
        items[shipment_id].append((item_id, state))
    return items


async def split_shipments(
    uow: UnitOfWork, requests: Sequence[Incoming[ShipmentSplitRequested]], settings: Settings
) -> None:
    """Move chosen items into an existing shipment of the order or a new one. All or nothing: a refused
    item rejects the request with `shipment.split_rejected` and nothing changes."""
    states = state_map(settings)
    for incoming in requests:
        request = incoming.event
        reference = request.order_reference
        shipments = {
            row.id: row
            for row in await uow.conn.execute(
                select(shipment)
                .where(shipment.c.order_reference == reference)
                .order_by(shipment.c.id)
                .with_for_update()
            )
        }
        placements = {
            row.item_id: Placement(row.item_id, row.shipment_id, row.state)
            for row in await uow.conn.execute(
                select(shipment_item.c.item_id, shipment_item.c.shipment_id, item_state.c.state)
                .select_from(shipment_item.outerjoin(item_state, item_state.c.item_id == shipment_item.c.item_id))
                .where(shipment_item.c.order_reference == reference)
            )
        }
        decision = decide_split(
            order_reference=reference,
            placements=placements,
            item_ids=request.item_ids,
            target_shipment_id=request.target_shipment_id,
            order_shipment_ids=set(shipments),
            states=states,
            split_delivery_enabled=settings.split_delivery_enabled,
        )
        if decision.rejected:
            log.info("split of %s refused: %s", reference, decision.message)
            uow.publish(
                ShipmentSplitRejected(
                    **request.caused(),
                    order_reference=reference,
                    custom_order_reference=request.custom_order_reference,
                    reason=decision.reason,  # type: ignore[arg-type]
                    message=decision.message,
                    item_ids=request.item_ids,
                    refused_items=decision.refused,
                )
            )
            continue
        created = False
        if request.target_shipment_id is not None:
            target_id = request.target_shipment_id
        else:
            assert request.new_shipment is not None
            key = shipment_key(request.new_shipment)
            same = next((row for row in shipments.values() if row.group_key == key), None)
            if same is not None:
                target_id = same.id
            else:
                any_row = next(iter(shipments.values()))
                new = request.new_shipment
                target_row = (
                    await uow.conn.execute(
                        insert(shipment)
                        .values(
                            order_reference=reference,
                            custom_order_reference=any_row.custom_order_reference,
                            group_key=key,
                            address=new.address.model_dump(mode="json"),
                            method_key=new.method.key,
                            method=new.method.model_dump(mode="json"),
                            requested_delivery_date=new.requested_delivery_date,
                            expense_amount=new.method.price,
                            currency=any_row.currency,
                        )
                        .returning(*shipment.c)
                    )
                ).one()
                shipments[target_row.id] = target_row
                target_id = target_row.id
                created = True
        moves = {source: items for source, items in decision.moves.items() if source != target_id}
        moved = [item_id for items in moves.values() for item_id in items]
        if moved:
            await uow.conn.execute(
                update(shipment_item).where(shipment_item.c.item_id == any_id(moved)).values(shipment_id=target_id)
            )
        affected = sorted({target_id, *moves})
        contents = await _items_of(uow, affected)
        removed = [shipment_id for shipment_id in moves if not contents[shipment_id]]
        if removed:
            await uow.conn.execute(delete(shipment).where(shipment.c.id == any_id(removed)))
        for source, items in moves.items():
            uow.publish(
                ShipmentSplit(
                    **request.caused(),
                    order_reference=reference,
                    custom_order_reference=shipments[source].custom_order_reference,
                    from_shipment_id=source,
                    to_shipment_id=target_id,
                    item_id_ranges=to_ranges(items),
                    to_shipment_created=created,
                    from_shipment_removed=source in removed,
                )
            )
        now = datetime.now(UTC)
        for shipment_id in affected:
            items = contents[shipment_id]
            status = shipment_status((state for _, state in items), states)
            if shipment_id not in removed:
                await uow.conn.execute(
                    update(shipment).where(shipment.c.id == shipment_id).values(status=status, updated_at=now)
                )
            uow.publish(
                _updated(
                    shipments[shipment_id],
                    [item_id for item_id, _ in items],
                    status,
                    request,
                    removed=shipment_id in removed,
                )
            )
        log.info("%s: moved %d items into shipment %d", reference, len(moved), target_id)


async def follow_item_states(
    uow: UnitOfWork, changes: Sequence[Incoming[ItemStateChanged]], settings: Settings
) -> None:
    """Remember each item's state; a shipment whose status follows from its items' states changes with them."""
    states = state_map(settings)
    touched: set[int] = set()
    for incoming in changes:
        event = incoming.event
        ids: list[int] = []
        targets: list[str] = []
        for change in event.changes:
            for item_id in change.item_ids:
                ids.append(item_id)
                targets.append(change.to_state)
        if not ids:
            continue
        await uow.conn.execute(
            text(
                """INSERT INTO shipping.item_state (item_id, order_reference, state, changed_at)
                   SELECT unnest(CAST(:ids AS bigint[])), :reference, unnest(CAST(:states AS text[])), :at
                   ON CONFLICT (item_id) DO UPDATE SET state = excluded.state, changed_at = excluded.changed_at"""
            ),
            {"ids": ids, "states": targets, "reference": event.order_reference, "at": event.occurred_at},
        )
        touched.update(
            (
                await uow.conn.execute(
                    select(shipment_item.c.shipment_id).distinct().where(shipment_item.c.item_id == any_id(ids))
                )
            ).scalars()
        )
    if not touched:
        return
    rows = {row.id: row for row in await uow.conn.execute(select(shipment).where(shipment.c.id == any_id(touched)))}
    contents = await _items_of(uow, sorted(rows))
    now = datetime.now(UTC)
    cause = changes[-1].event
    for shipment_id, row in sorted(rows.items()):
        status = shipment_status((state for _, state in contents[shipment_id]), states)
        if status != row.status:
            await uow.conn.execute(
                update(shipment).where(shipment.c.id == shipment_id).values(status=status, updated_at=now)
            )
            uow.publish(_updated(row, [item_id for item_id, _ in contents[shipment_id]], status, cause))
            log.info("shipment %d of %s is now %s", shipment_id, row.order_reference, status)


async def follow_custom_references(
    uow: UnitOfWork, changes: Sequence[Incoming[OrderCustomReferenceChanged]], settings: Settings
) -> None:
    """Keep the order's custom reference current, so later shipment events carry the new one."""
    for incoming in changes:
        change = incoming.event
        await uow.conn.execute(
            update(shipment)
            .where(shipment.c.order_reference == change.order_reference)
            .values(custom_order_reference=change.new_value)
        )
