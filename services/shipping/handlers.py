"""shipping's message handlers."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert

from schemas import Money, OrderCreated, ShipmentCreated
from services.runtime.consumer import Incoming
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork
from services.shipping.domain.grouping import ShipmentGroup, group_items
from services.shipping.tables import shipment, shipment_item

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
    item_rows = [
        {"item_id": item_id, "shipment_id": shipment_id, "order_reference": order.order_reference}
        for shipment_id, order, group in new
        for item_id in group.item_ids
    ]
    if item_rows:
        await uow.conn.execute(insert(shipment_item).on_conflict_do_nothing(), item_rows)
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
                item_ids=group.item_ids,
            )
        )
    log.info("created %d shipments", len(new))
