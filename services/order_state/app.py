"""order_state's FastStream application."""

from __future__ import annotations

from collections.abc import Sequence

from faststream import FastStream

from schemas import OrderPlaced
from services.order_state import handlers
from services.order_state.tables import SCHEMA, metadata
from services.runtime.consumer import Incoming
from services.runtime.service import ServiceContext, ServiceDefinition, create_app
from services.runtime.settings import Settings, get_settings
from services.runtime.unit_of_work import UnitOfWork


def subscribe(context: ServiceContext) -> None:
    settings = context.settings

    async def place_orders(uow: UnitOfWork, placed: Sequence[Incoming[OrderPlaced]]) -> None:
        await handlers.place_orders(uow, placed, settings)

    context.consumer.subscribe(context.broker, OrderPlaced.TOPIC, OrderPlaced, place_orders)


DEFINITION = ServiceDefinition(name=SCHEMA, metadata=metadata, subscribe=subscribe, topics=[OrderPlaced.TOPIC])


def build(settings: Settings | None = None) -> FastStream:
    return create_app(DEFINITION, settings or get_settings())
