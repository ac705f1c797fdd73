"""shipping's FastStream application."""

from __future__ import annotations

from collections.abc import Sequence

from faststream import FastStream

from schemas import (
    ItemStateChanged,
    OrderCreated,
    OrderCustomReferenceChanged,
    ShipmentCreated,
    ShipmentSplit,
    ShipmentSplitRejected,
    ShipmentSplitRequested,
    ShipmentUpdated,
)
from services.runtime.consumer import Incoming
from services.runtime.service import ServiceContext, ServiceDefinition, create_app
from services.runtime.settings import Settings, get_settings
from services.runtime.unit_of_work import UnitOfWork
from services.shipping import handlers
from services.shipping.tables import SCHEMA, metadata


def subscribe(context: ServiceContext) -> None:
    settings = context.settings

    async def create_shipments(uow: UnitOfWork, created: Sequence[Incoming[OrderCreated]]) -> None:
        await handlers.create_shipments(uow, created, settings)

    async def split_shipments(uow: UnitOfWork, requests: Sequence[Incoming[ShipmentSplitRequested]]) -> None:
        await handlers.split_shipments(uow, requests, settings)

    async def follow_item_states(uow: UnitOfWork, changes: Sequence[Incoming[ItemStateChanged]]) -> None:
        await handlers.follow_item_states(uow, changes, settings)

    async def follow_custom_references(
        uow: UnitOfWork, changes: Sequence[Incoming[OrderCustomReferenceChanged]]
    ) -> None:
        await handlers.follow_custom_references(uow, changes, settings)

    consumer = context.consumer
    consumer.subscribe(OrderCustomReferenceChanged.TOPIC, OrderCustomReferenceChanged, follow_custom_references)
    consumer.subscribe(OrderCreated.TOPIC, OrderCreated, create_shipments)
    consumer.subscribe(ShipmentSplitRequested.TOPIC, ShipmentSplitRequested, split_shipments)
    consumer.subscribe(ItemStateChanged.TOPIC, ItemStateChanged, follow_item_states)


DEFINITION = ServiceDefinition(
    name=SCHEMA,
    metadata=metadata,
    subscribe=subscribe,
    publishes=(ShipmentCreated, ShipmentSplit, ShipmentSplitRejected, ShipmentUpdated),
)


def build(settings: Settings | None = None) -> FastStream:
    return create_app(DEFINITION, settings or get_settings())
