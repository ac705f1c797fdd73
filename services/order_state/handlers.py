"""order_state's message handlers: thin, set-based."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from schemas import OrderCreated, OrderLine, OrderPlaced
from services.order_state.domain.splitting import split_line
from services.order_state.tables import sales_order, sales_order_line
from services.runtime.consumer import Incoming
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

INITIAL_STATE = "new"

INSERT_ITEMS = text(
    """
    INSERT INTO order_state.sales_order_item (order_id, line_number, sku, quantity, state, state_changed_at)
    SELECT l.order_id, l.line_number, l.sku, l.quantity_each, :state, :now
    FROM unnest(CAST(:order_ids AS bigint[]), CAST(:line_numbers AS int[]), CAST(:skus AS text[]),
                CAST(:counts AS int[]), CAST(:quantities AS int[]))
         AS l(order_id, line_number, sku, item_count, quantity_each)
    CROSS JOIN LATERAL generate_series(1, l.item_count) AS u(n)
    ORDER BY l.order_id, l.line_number, u.n
    RETURNING id, order_id, line_number
    """
)


def process_for(order: OrderPlaced, settings: Settings) -> str:
    return order.process_name or settings.default_process


async def place_orders(uow: UnitOfWork, placed: Sequence[Incoming[OrderPlaced]], settings: Settings) -> None:
    """Store each placed order with its lines and items in the initial state; publish `order.created`."""
    now = datetime.now(UTC)
    rows = [
        {
            "order_reference": item.event.order_reference,
            "custom_order_reference": item.event.custom_order_reference,
            "store": item.event.store,
            "locale": item.event.locale,
            "currency": item.event.currency,
            "price_mode": item.event.price_mode,
            "customer_reference": item.event.customer.customer_reference,
            "customer": item.event.customer.model_dump(mode="json"),
            "billing_address": item.event.billing_address.model_dump(mode="json"),
            "payment_method": item.event.payment_method,
            "process_name": process_for(item.event, settings),
            "totals": item.event.totals.model_dump(mode="json"),
            "placed_at": item.event.placed_at or item.event.occurred_at,
            "placed_event_id": item.event.event_id,
        }
        for item in placed
    ]
    stored = await uow.conn.execute(
        insert(sales_order)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["order_reference"])
        .returning(sales_order.c.id, sales_order.c.order_reference)
    )
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

    line_rows = []
    split_order_ids, split_lines, split_skus, split_counts, split_quantities = [], [], [], [], []
    for order_id, item in accepted:
        for number, line in enumerate(item.event.lines, start=1):
            line_rows.append(
                {
                    "order_id": order_id,
                    "line_number": number,
                    "sku": line.sku,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "tax_rate": line.tax_rate,
                    "is_quantity_splittable": line.is_quantity_splittable,
                    "shipment": line.shipment.model_dump(mode="json"),
                }
            )
            split = split_line(line.quantity, is_quantity_splittable=line.is_quantity_splittable)
            split_order_ids.append(order_id)
            split_lines.append(number)
            split_skus.append(line.sku)
            split_counts.append(split.count)
            split_quantities.append(split.quantity_each)
    await uow.conn.execute(insert(sales_order_line), line_rows)

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
    item_ids: dict[tuple[int, int], list[int]] = defaultdict(list)
    for item_id, order_id, line_number in created:
        item_ids[(order_id, line_number)].append(item_id)

    for order_id, item in accepted:
        order = item.event
        uow.publish(
            OrderCreated(
                **order.caused(),
                order_reference=order.order_reference,
                custom_order_reference=order.custom_order_reference,
                store=order.store,
                locale=order.locale,
                currency=order.currency,
                price_mode=order.price_mode,
                customer=order.customer,
                billing_address=order.billing_address,
                process_name=process_for(order, settings),
                payment_method=order.payment_method,
                initial_state=INITIAL_STATE,
                totals=order.totals,
                placed_at=order.placed_at or order.occurred_at,
                lines=[
                    OrderLine(
                        line_number=number,
                        sku=line.sku,
                        name=line.name,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        tax_rate=line.tax_rate,
                        is_quantity_splittable=line.is_quantity_splittable,
                        shipment=line.shipment,
                        item_ids=sorted(item_ids[(order_id, number)]),
                        item_quantity=split_line(
                            line.quantity, is_quantity_splittable=line.is_quantity_splittable
                        ).quantity_each,
                    )
                    for number, line in enumerate(order.lines, start=1)
                ],
            )
        )
    log.info("stored %d orders", len(accepted))
