"""invoicing's FastStream application."""

from __future__ import annotations

from collections.abc import Sequence

from faststream import FastStream

from schemas import (
    InvoiceCreditNoteIssued,
    InvoiceGenerated,
    InvoiceGenerationRequested,
    InvoiceResendRejected,
    InvoiceResendRequested,
    InvoiceSent,
    OrderCanceled,
    OrderCreated,
    OrderCustomReferenceChanged,
)
from services.invoicing import handlers
from services.invoicing.mailer import deliver_emails
from services.invoicing.render import check_template_dir
from services.invoicing.tables import SCHEMA, metadata
from services.runtime.consumer import Incoming
from services.runtime.service import ServiceContext, ServiceDefinition, create_app
from services.runtime.settings import Settings, get_settings
from services.runtime.unit_of_work import UnitOfWork


def subscribe(context: ServiceContext) -> None:
    settings = context.settings
    check_template_dir(settings.invoice_template_dir)  # a broken replacement folder stops the start, clearly

    async def remember_orders(uow: UnitOfWork, created: Sequence[Incoming[OrderCreated]]) -> None:
        await handlers.remember_orders(uow, created, settings)

    async def answer_generation_requests(
        uow: UnitOfWork, requests: Sequence[Incoming[InvoiceGenerationRequested]]
    ) -> None:
        await handlers.answer_generation_requests(uow, requests, settings)

    async def resend_invoices(uow: UnitOfWork, requests: Sequence[Incoming[InvoiceResendRequested]]) -> None:
        await handlers.resend_invoices(uow, requests, settings)

    async def follow_custom_references(
        uow: UnitOfWork, changes: Sequence[Incoming[OrderCustomReferenceChanged]]
    ) -> None:
        await handlers.follow_custom_references(uow, changes, settings)

    context.consumer.subscribe(OrderCustomReferenceChanged.TOPIC, OrderCustomReferenceChanged, follow_custom_references)

    async def follow_cancellations(uow: UnitOfWork, cancellations: Sequence[Incoming[OrderCanceled]]) -> None:
        await handlers.follow_cancellations(uow, cancellations, settings)

    context.consumer.subscribe(OrderCanceled.TOPIC, OrderCanceled, follow_cancellations)
    context.consumer.subscribe(OrderCreated.TOPIC, OrderCreated, remember_orders)
    context.consumer.subscribe(InvoiceResendRequested.TOPIC, InvoiceResendRequested, resend_invoices)
    context.consumer.subscribe(InvoiceGenerationRequested.TOPIC, InvoiceGenerationRequested, answer_generation_requests)


DEFINITION = ServiceDefinition(
    name=SCHEMA,
    metadata=metadata,
    subscribe=subscribe,
    workers=[deliver_emails],
    publishes=(InvoiceGenerated, InvoiceSent, InvoiceResendRejected, InvoiceCreditNoteIssued),
)


def build(settings: Settings | None = None) -> FastStream:
    return create_app(DEFINITION, settings or get_settings())
