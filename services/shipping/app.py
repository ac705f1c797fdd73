"""shipping's FastStream application."""

from __future__ import annotations

from collections.abc import Sequence

from faststream import FastStream

from schemas import OrderCreated
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

    context.consumer.subscribe(context.broker, OrderCreated.TOPIC, OrderCreated, create_shipments)


DEFINITION = ServiceDefinition(
    name=SCHEMA, metadata=metadata, subscribe=subscribe, topics=lambda _settings: [OrderCreated.TOPIC]
)


def build(settings: Settings | None = None) -> FastStream:
    return create_app(DEFINITION, settings or get_settings())
