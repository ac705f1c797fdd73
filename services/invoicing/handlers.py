"""invoicing's message handlers."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parseaddr
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert

from schemas import (
    InvoiceCreditNoteIssued,
    InvoiceGenerated,
    InvoiceGenerationRequested,
    InvoiceResendRejected,
    InvoiceResendRequested,
    OrderCanceled,
    OrderCreated,
    OrderCustomReferenceChanged,
)
from services.invoicing.domain.document import compute_figures
from services.invoicing.domain.numbering import format_invoice_reference
from services.invoicing.render import render_invoice
from services.invoicing.tables import (
    canceled_order,
    credit_note,
    invoice,
    invoice_email,
    invoice_sequence,
    order_snapshot,
)
from services.runtime.consumer import Incoming
from services.runtime.errors import RetryLater
from services.runtime.settings import Settings
from services.runtime.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def message_id_for(invoice_reference: str, purpose: str, settings: Settings) -> str:
    """Fixed when the e-mail is queued, so every retry of it carries the same Message-ID."""
    domain = parseaddr(settings.invoice_from)[1].rpartition("@")[2] or "oms.local"
    return f"<{purpose}.{invoice_reference}.{uuid.uuid4().hex[:12]}@{domain}>"


async def take_numbers(uow: UnitOfWork, store: str, count: int) -> list[int]:
    """The next `count` numbers of the store's sequence. The row stays locked until commit, and a
    rollback gives the numbers back: no gaps, no duplicates, whatever runs concurrently."""
    statement = (
        insert(invoice_sequence)
        .values(store=store, last_number=count)
        .on_conflict_do_update(index_elements=["store"], set_={"last_number": invoice_sequence.c.last_number + count})
        .returning(invoice_sequence.c.last_number)
    )
    last = (await uow.conn.execute(statement)).scalar_one()
    return list(range(last - count + 1, last + 1))


async def remember_orders(uow: UnitOfWork, created: Sequence[Incoming[OrderCreated]], settings: Settings) -> None:
    """Keep each new order; invoice it now when invoices are made at placement (the default)."""
    await uow.conn.execute(
        insert(order_snapshot)
        .values(
            [{"order_reference": i.event.order_reference, "payload": i.event.model_dump(mode="json")} for i in created]
        )
        .on_conflict_do_nothing()
    )
    if settings.invoice_trigger == "order.created":
        await generate_invoices(uow, [item.event for item in created], settings)


async def answer_generation_requests(
    uow: UnitOfWork, requests: Sequence[Incoming[InvoiceGenerationRequested]], settings: Settings
) -> None:
    """The order process asks for the invoice: make it if there is none yet, else announce the one there is,
    so the process moves on either way."""
    references = [item.event.order_reference for item in requests]
    invoices = {
        row.order_reference: row
        for row in await uow.conn.execute(select(invoice).where(invoice.c.order_reference.in_(references)))
    }
    missing = [reference for reference in dict.fromkeys(references) if reference not in invoices]
    snapshots = {
        row.order_reference: OrderCreated.model_validate(row.payload)
        for row in await uow.conn.execute(select(order_snapshot).where(order_snapshot.c.order_reference.in_(missing)))
    }
    absent = [reference for reference in missing if reference not in snapshots]
    if absent:
        raise RetryLater(f"invoice requested before order.created arrived for {', '.join(absent)}")
    generated = await generate_invoices(
        uow, list(snapshots.values()), settings, causes={item.event.order_reference: item.event for item in requests}
    )
    for item in requests:
        request = item.event
        row = invoices.get(request.order_reference)
        if row is None or request.order_reference in generated:
            continue
        uow.publish(
            InvoiceGenerated(
                **request.caused(),
                order_reference=row.order_reference,
                custom_order_reference=row.custom_order_reference,
                invoice_reference=row.invoice_reference,
                store=row.store,
                currency=row.currency,
                subtotal=row.subtotal,
                expense_total=row.expense_total,
                tax_total=row.tax_total,
                grand_total=row.grand_total,
            )
        )


async def generate_invoices(
    uow: UnitOfWork,
    orders: Sequence[OrderCreated],
    settings: Settings,
    causes: dict[str, InvoiceGenerationRequested] | None = None,
) -> set[str]:
    """One invoice per order: numbered, rendered, queued for e-mail, announced. Returns the order
    references invoiced now."""
    causes = causes or {}
    references = [order.order_reference for order in orders]
    existing = set(
        (
            await uow.conn.execute(select(invoice.c.order_reference).where(invoice.c.order_reference.in_(references)))
        ).scalars()
    )
    canceled = set(
        (
            await uow.conn.execute(
                select(canceled_order.c.order_reference).where(canceled_order.c.order_reference.in_(references))
            )
        ).scalars()
    )
    todo: dict[str, OrderCreated] = {}
    for order in orders:
        if order.order_reference in existing or order.order_reference in todo:
            log.info("invoice for %s exists already", order.order_reference)
            continue
        if order.order_reference in canceled:
            log.info("%s was canceled before it was invoiced: no invoice", order.order_reference)
            continue
        todo[order.order_reference] = order
    if not todo:
        return set()

    by_store: dict[str, list[OrderCreated]] = defaultdict(list)
    for order in todo.values():
        by_store[order.store].append(order)

    now = datetime.now(UTC)
    template_dir = Path(settings.invoice_template_dir) if settings.invoice_template_dir else None
    invoice_rows, documents = [], {}
    for store, orders in sorted(by_store.items()):
        numbers = await take_numbers(uow, store, len(orders))
        for order, number in zip(orders, numbers, strict=True):
            figures = compute_figures(order)
            reference = format_invoice_reference(settings.invoice_reference_format, store, number)
            context = {
                "invoice_reference": reference,
                "issued_at": now,
                "order_reference": order.order_reference,
                "custom_order_reference": order.custom_order_reference,
                "billing_address": order.billing_address.model_dump(),
                "customer": order.customer.model_dump(),
                "currency": order.currency,
                "gross": order.price_mode == "GROSS_MODE",
                **asdict(figures),
            }
            documents[order.order_reference] = (reference, render_invoice(context, order.locale, template_dir))
            invoice_rows.append(
                {
                    "order_reference": order.order_reference,
                    "custom_order_reference": order.custom_order_reference,
                    "invoice_reference": reference,
                    "store": store,
                    "sequence_number": number,
                    "locale": order.locale,
                    "currency": order.currency,
                    "customer_email": str(order.customer.email),
                    "billing_address": order.billing_address.model_dump(mode="json"),
                    "subtotal": figures.subtotal,
                    "expense_total": figures.expense_total,
                    "tax_total": figures.tax_total,
                    "grand_total": figures.grand_total,
                    "document": {
                        "lines": [{**asdict(line), "tax_rate": str(line.tax_rate)} for line in figures.lines],
                        "expenses": [
                            {**asdict(expense), "tax_rate": str(expense.tax_rate)} for expense in figures.expenses
                        ],
                        "tax_by_rate": {str(rate): amount for rate, amount in figures.tax_by_rate.items()},
                    },
                    "issued_at": now,
                    "source_event_id": order.event_id,
                }
            )
    stored = await uow.conn.execute(
        insert(invoice).values(invoice_rows).returning(invoice.c.id, invoice.c.order_reference)
    )
    email_rows = []
    for invoice_id, order_reference in stored:
        order = todo[order_reference]
        reference, rendered = documents[order_reference]
        email_rows.append(
            {
                "invoice_id": invoice_id,
                "purpose": "invoice",
                "recipient": str(order.customer.email),
                "recipient_name": f"{order.customer.first_name} {order.customer.last_name}",
                "bcc": list(settings.invoice_bcc),
                "message_id": message_id_for(reference, "invoice", settings),
                "subject": rendered.subject,
                "body_text": rendered.text,
                "body_html": rendered.html,
            }
        )
    await uow.conn.execute(insert(invoice_email), email_rows)
    for row in invoice_rows:
        order = todo[row["order_reference"]]
        cause = causes.get(order.order_reference, order)
        uow.publish(
            InvoiceGenerated(
                **cause.caused(),
                order_reference=order.order_reference,
                custom_order_reference=order.custom_order_reference,
                invoice_reference=row["invoice_reference"],
                store=row["store"],
                currency=order.currency,
                subtotal=row["subtotal"],
                expense_total=row["expense_total"],
                tax_total=row["tax_total"],
                grand_total=row["grand_total"],
            )
        )
    log.info("generated %d invoices", len(invoice_rows))
    return set(todo)


async def resend_invoices(
    uow: UnitOfWork, requests: Sequence[Incoming[InvoiceResendRequested]], settings: Settings
) -> None:
    """Queue the invoice e-mail again, on purpose: a new delivery with its own Message-ID, recorded with
    who asked; the first delivery stays as it was."""
    for incoming in requests:
        request = incoming.event
        original = (
            await uow.conn.execute(
                select(invoice_email, invoice.c.invoice_reference)
                .join(invoice, invoice.c.id == invoice_email.c.invoice_id)
                .where(invoice.c.order_reference == request.order_reference, invoice_email.c.purpose == "invoice")
            )
        ).first()
        if original is None:
            uow.publish(
                InvoiceResendRejected(
                    **request.caused(),
                    order_reference=request.order_reference,
                    custom_order_reference=request.custom_order_reference,
                    reason="unknown_invoice",
                    message=f"there is no invoice for order {request.order_reference!r}",
                )
            )
            continue
        await uow.conn.execute(
            insert(invoice_email).values(
                invoice_id=original.invoice_id,
                purpose="resend",
                recipient=original.recipient,
                recipient_name=original.recipient_name,
                bcc=list(settings.invoice_bcc),
                message_id=message_id_for(original.invoice_reference, "resend", settings),
                subject=original.subject,
                body_text=original.body_text,
                body_html=original.body_html,
                requested_by=request.requested_by or "unknown",
                request_event_id=request.event_id,
                correlation_id=request.caused()["correlation_id"],
            )
        )
        log.info("invoice %s queued again for %s", original.invoice_reference, request.requested_by)


async def follow_custom_references(
    uow: UnitOfWork, changes: Sequence[Incoming[OrderCustomReferenceChanged]], settings: Settings
) -> None:
    """Keep the order's custom reference current, so later invoice events carry the new one."""
    for incoming in changes:
        change = incoming.event
        await uow.conn.execute(
            update(invoice)
            .where(invoice.c.order_reference == change.order_reference)
            .values(custom_order_reference=change.new_value)
        )
        await uow.conn.execute(
            text(
                """UPDATE invoicing.order_snapshot
                   SET payload = jsonb_set(payload, '{custom_order_reference}',
                                           coalesce(to_jsonb(CAST(:value AS text)), 'null'::jsonb))
                   WHERE order_reference = :reference"""
            ),
            {"value": change.new_value, "reference": change.order_reference},
        )


async def follow_cancellations(
    uow: UnitOfWork, cancellations: Sequence[Incoming[OrderCanceled]], settings: Settings
) -> None:
    """A fully canceled order: its invoice e-mail is not sent if it has not gone out yet; if it has, the
    customer gets a credit note that cancels the invoice (the invoice itself is never changed or deleted,
    so the books keep both)."""
    for incoming in cancellations:
        canceled = incoming.event
        if not canceled.whole_order:
            continue  # partial cancellations are settled by the refund, not by a new document
        stopped = await uow.conn.execute(
            update(invoice_email)
            .where(
                invoice_email.c.status == "pending",
                invoice_email.c.invoice_id.in_(
                    select(invoice.c.id).where(invoice.c.order_reference == canceled.order_reference)
                ),
            )
            .values(status="canceled", last_error="not sent: the order was canceled before the e-mail went out")
            .returning(invoice_email.c.message_id)
        )
        if stopped.all():
            log.info("invoice e-mail of %s not sent: order canceled", canceled.order_reference)
            continue
        invoiced = await uow.conn.scalar(
            select(invoice.c.id).where(invoice.c.order_reference == canceled.order_reference)
        )
        if invoiced is None:  # canceled before its invoice was made (order.created may still be on its way)
            await uow.conn.execute(
                insert(canceled_order)
                .values(
                    order_reference=canceled.order_reference,
                    canceled_at=canceled.occurred_at,
                    source_event_id=canceled.event_id,
                )
                .on_conflict_do_nothing()
            )
            log.info("%s canceled before it was invoiced: it will not be", canceled.order_reference)
            continue
        await issue_credit_note(uow, canceled, settings)


async def issue_credit_note(uow: UnitOfWork, canceled: OrderCanceled, settings: Settings) -> None:
    row = (await uow.conn.execute(select(invoice).where(invoice.c.order_reference == canceled.order_reference))).first()
    if row is None:
        return
    sent = (
        await uow.conn.execute(
            select(invoice_email)
            .where(invoice_email.c.invoice_id == row.id, invoice_email.c.status == "sent")
            .order_by(invoice_email.c.id)
            .limit(1)
        )
    ).first()
    exists = await uow.conn.scalar(select(credit_note.c.id).where(credit_note.c.invoice_id == row.id))
    if sent is None or exists is not None:
        return
    snapshot = (
        await uow.conn.execute(
            select(order_snapshot.c.payload).where(order_snapshot.c.order_reference == row.order_reference)
        )
    ).scalar_one()
    (number,) = await take_numbers(uow, f"{row.store}/credit-notes", 1)
    reference = settings.credit_note_reference_format.format(store=row.store, number=number)
    now = datetime.now(UTC)
    document = row.document
    context = {
        "invoice_reference": reference,
        "credits_invoice": row.invoice_reference,
        "issued_at": now,
        "order_reference": row.order_reference,
        "custom_order_reference": row.custom_order_reference,
        "billing_address": row.billing_address,
        "customer": snapshot["customer"],
        "currency": row.currency,
        "gross": snapshot["price_mode"] == "GROSS_MODE",
        "lines": [
            {
                **line,
                "unit_price": -line["unit_price"],
                "line_total": -line["line_total"],
                "tax_rate": Decimal(line["tax_rate"]),
            }
            for line in document["lines"]
        ],
        "expenses": [
            {**expense, "amount": -expense["amount"], "tax_rate": Decimal(expense["tax_rate"])}
            for expense in document["expenses"]
        ],
        "subtotal": -row.subtotal,
        "expense_total": -row.expense_total,
        "tax_by_rate": {Decimal(rate): -amount for rate, amount in document["tax_by_rate"].items()},
        "tax_total": -row.tax_total,
        "grand_total": -row.grand_total,
    }
    template_dir = Path(settings.invoice_template_dir) if settings.invoice_template_dir else None
    rendered = render_invoice(context, row.locale, template_dir)
    await uow.conn.execute(
        insert(credit_note).values(
            invoice_id=row.id,
            credit_note_reference=reference,
            store=row.store,
            sequence_number=number,
            subtotal=-row.subtotal,
            expense_total=-row.expense_total,
            tax_total=-row.tax_total,
            grand_total=-row.grand_total,
            reason=canceled.reason,
            issued_at=now,
            source_event_id=canceled.event_id,
        )
    )
    await uow.conn.execute(
        insert(invoice_email).values(
            invoice_id=row.id,
            purpose="credit_note",
            recipient=sent.recipient,
            recipient_name=sent.recipient_name,
            bcc=list(settings.invoice_bcc),
            message_id=message_id_for(reference, "credit-note", settings),
            subject=rendered.subject,
            body_text=rendered.text,
            body_html=rendered.html,
        )
    )
    uow.publish(
        InvoiceCreditNoteIssued(
            **canceled.caused(),
            order_reference=row.order_reference,
            custom_order_reference=row.custom_order_reference,
            credit_note_reference=reference,
            invoice_reference=row.invoice_reference,
            store=row.store,
            currency=row.currency,
            subtotal=-row.subtotal,
            expense_total=-row.expense_total,
            tax_total=-row.tax_total,
            grand_total=-row.grand_total,
            reason=canceled.reason,
        )
    )
    log.info("credit note %s cancels invoice %s", reference, row.invoice_reference)
