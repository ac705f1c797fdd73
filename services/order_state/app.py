"""order_state's FastStream application."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from faststream import FastStream

from schemas import (
    InvoiceGenerationRequested,
    ItemStateChanged,
    OrderCanceled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderCreated,
    OrderCustomReferenceChanged,
    OrderCustomReferenceUpdateRejected,
    OrderCustomReferenceUpdateRequested,
    OrderItemEventRejected,
    OrderItemEventRequested,
    OrderPlaced,
    ShipmentCreated,
    ShipmentSplit,
    model_for_topic,
)
from schemas.envelope import Event
from services.order_state import handlers
from services.order_state.process_catalog import ProcessCatalog
from services.order_state.scheduler import Scheduler
from services.order_state.tables import SCHEMA, metadata, outbox
from services.runtime.consumer import Incoming
from services.runtime.service import ServiceContext, ServiceDefinition, create_app
from services.runtime.settings import Settings, get_settings
from services.runtime.unit_of_work import UnitOfWork
from services.runtime.wire import Document


def subscribe(context: ServiceContext) -> None:
    catalog = context.extras["catalog"] = ProcessCatalog.load(context.settings)

    async def place_orders(uow: UnitOfWork, placed: Sequence[Incoming[Document]]) -> None:
        await handlers.place_orders(uow, placed, catalog)

    async def trigger_item_events(uow: UnitOfWork, requests: Sequence[Incoming[OrderItemEventRequested]]) -> None:
        await handlers.trigger_item_events(uow, requests, catalog)

    async def assign_shipments(uow: UnitOfWork, shipments: Sequence[Incoming[ShipmentCreated]]) -> None:
        await handlers.assign_shipments(uow, shipments)

    async def follow_splits(uow: UnitOfWork, splits: Sequence[Incoming[ShipmentSplit]]) -> None:
        await handlers.assign_shipments(uow, splits)

    async def update_custom_references(
        uow: UnitOfWork, requests: Sequence[Incoming[OrderCustomReferenceUpdateRequested]]
    ) -> None:
        await handlers.update_custom_references(uow, requests)

    async def cancel_orders(uow: UnitOfWork, requests: Sequence[Incoming[OrderCancelRequested]]) -> None:
        await handlers.cancel_orders(uow, requests, catalog, context.settings)

    consumer = context.consumer
    consumer.subscribe(OrderCancelRequested.TOPIC, OrderCancelRequested, cancel_orders)
    consumer.subscribe(OrderPlaced.TOPIC, OrderPlaced, place_orders, as_documents=True)
    consumer.subscribe(OrderItemEventRequested.TOPIC, OrderItemEventRequested, trigger_item_events)
    consumer.subscribe(ShipmentCreated.TOPIC, ShipmentCreated, assign_shipments)
    consumer.subscribe(ShipmentSplit.TOPIC, ShipmentSplit, follow_splits)
    consumer.subscribe(
        OrderCustomReferenceUpdateRequested.TOPIC, OrderCustomReferenceUpdateRequested, update_custom_references
    )
    for topic, event in sorted(context.settings.fact_events.items()):

        async def apply_fact(uow: UnitOfWork, facts: Sequence[Incoming[Event]], event: str = event) -> None:
            await handlers.apply_fact(uow, facts, catalog, event)

        apply_fact.__name__ = f"apply_{topic.replace('.', '_')}"
        consumer.subscribe(topic, model_for_topic(topic), apply_fact)


async def run_scheduler(context: ServiceContext, stop: asyncio.Event) -> None:
    settings = context.settings
    scheduler = Scheduler(
        context.engine,
        context.extras["catalog"],
        outbox,
        condition_interval=timedelta(seconds=settings.condition_check_interval_seconds),
    )
    await scheduler.run(stop, interval=settings.timeout_check_interval_seconds)


DEFINITION = ServiceDefinition(
    name=SCHEMA,
    metadata=metadata,
    subscribe=subscribe,
    workers=[run_scheduler],
    publishes=(
        OrderCreated,
        ItemStateChanged,
        OrderItemEventRejected,
        OrderCanceled,
        OrderCancelRejected,
        OrderCustomReferenceChanged,
        OrderCustomReferenceUpdateRejected,
        InvoiceGenerationRequested,  # the default process's command asks for the invoice
    ),
)


def build(settings: Settings | None = None) -> FastStream:
    return create_app(DEFINITION, settings or get_settings())
