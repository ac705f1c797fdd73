"""Invoices made when the process asks (OMS_INVOICE_TRIGGER=invoice.generation_requested): one per order,
however often the request comes. Handlers run against the real database, as the service runs them."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.structs import ConsumerRecord

from schemas import InvoiceGenerationRequested
from services.invoicing import handlers
from services.invoicing.tables import outbox
from services.runtime.consumer import Incoming
from services.runtime.errors import RetryLater
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork
from tests.support import rows
from tests.unit.test_domain import created_from_sample

RECORD = ConsumerRecord("t", 0, 0, 0, 0, b"k", b"{}", None, 0, 0, [])


async def run(engine, handler, events, settings):
    async with engine.begin() as conn:
        uow = UnitOfWork(conn, outbox, "invoicing")
        await handler(uow, [Incoming(event, RECORD) for event in events], settings)
        published = [row.topic for row in uow._pending]
        await uow.flush()
    return published


async def test_invoice_waits_for_the_process_and_is_made_once(engine, settings):
    on_request = Settings(**{**settings.model_dump(), "invoice_trigger": "invoice.generation_requested"})
    order = created_from_sample(3).model_copy(update={"order_reference": f"DE--TRIG-{uuid.uuid4().hex[:8]}"})
    request = InvoiceGenerationRequested(order_reference=order.order_reference, item_id_ranges=[(1, 4)])

    with pytest.raises(RetryLater, match=r"invoice requested before order\.created arrived"):
        await run(engine, handlers.answer_generation_requests, [request], on_request)

    assert await run(engine, handlers.remember_orders, [order], on_request) == []
    assert not await rows(engine, "SELECT 1 FROM invoicing.invoice WHERE order_reference = :r", r=order.order_reference)

    assert await run(engine, handlers.answer_generation_requests, [request], on_request) == ["invoice.generated"]
    again = InvoiceGenerationRequested(order_reference=order.order_reference, item_id_ranges=[(1, 4)])
    assert await run(engine, handlers.answer_generation_requests, [again], on_request) == ["invoice.generated"]
    invoices = await rows(
        engine, "SELECT invoice_reference FROM invoicing.invoice WHERE order_reference = :r", r=order.order_reference
    )
    assert len(invoices) == 1
    emails = await rows(
        engine,
        """SELECT e.purpose FROM invoicing.invoice_email e JOIN invoicing.invoice i
                                   ON i.id = e.invoice_id WHERE i.order_reference = :r""",
        r=order.order_reference,
    )
    assert [row.purpose for row in emails] == ["invoice"]
