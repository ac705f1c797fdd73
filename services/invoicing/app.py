"""invoicing's FastStream application."""

from __future__ import annotations

from collections.abc import Sequence

from faststream import FastStream

from schemas import OrderCreated
from services.invoicing import handlers
from services.invoicing.mailer import deliver_emails
from services.invoicing.tables import SCHEMA, metadata
from services.runtime.consumer import Incoming
from services.runtime.service import ServiceContext, ServiceDefinition, create_app
from services.runtime.settings import Settings, get_settings
from services.runtime.unit_of_work import UnitOfWork


def subscribe(context: ServiceContext) -> None:
    settings = context.settings

    async def generate_invoices(uow: UnitOfWork, created: Sequence[Incoming[OrderCreated]]) -> None:
        await handlers.generate_invoices(uow, created, settings)

    context.consumer.subscribe(context.broker, OrderCreated.TOPIC, OrderCreated, generate_invoices)


DEFINITION = ServiceDefinition(
    name=SCHEMA, metadata=metadata, subscribe=subscribe, topics=[OrderCreated.TOPIC], workers=[deliver_emails]
)


def build(settings: Settings | None = None) -> FastStream:
    return create_app(DEFINITION, settings or get_settings())
