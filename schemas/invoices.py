"""Invoicing contracts."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import EmailStr

from schemas.envelope import CurrencyCode, Event, MinorUnits


class InvoiceGenerated(Event):
    TOPIC: ClassVar[str] = "invoice.generated"
    event_type: Literal["invoice.generated"] = "invoice.generated"
    invoice_reference: str
    store: str
    currency: CurrencyCode
    subtotal: MinorUnits
    expense_total: MinorUnits
    tax_total: MinorUnits
    grand_total: MinorUnits


class InvoiceSent(Event):
    TOPIC: ClassVar[str] = "invoice.sent"
    event_type: Literal["invoice.sent"] = "invoice.sent"
    invoice_reference: str
    recipient: EmailStr
    bcc_count: int
