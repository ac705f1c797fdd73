"""Invoicing contracts."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from schemas.envelope import CurrencyCode, Email, Event, MinorUnits
from schemas.items import ItemIdRanges, from_ranges


class InvoiceGenerationRequested(Event):
    """Sent by the order process (command Invoice/Generate) when its items reach invoice generation."""

    TOPIC: ClassVar[str] = "invoice.generation_requested"
    event_type: Literal["invoice.generation_requested"] = "invoice.generation_requested"
    item_id_ranges: ItemIdRanges = Field(default_factory=list, description="Inclusive [first, last] id ranges.")

    @property
    def item_ids(self) -> list[int]:
        return from_ranges(self.item_id_ranges)


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
    recipient: Email
    bcc_count: int
    purpose: Literal["invoice", "resend", "credit_note"] = "invoice"
    message_id: str | None = None


class InvoiceResendRequested(Event):
    """Back office: send the invoice e-mail again, on purpose (recorded with who asked)."""

    TOPIC: ClassVar[str] = "invoice.resend_requested"
    event_type: Literal["invoice.resend_requested"] = "invoice.resend_requested"
    requested_by: str | None = Field(default=None, max_length=255)


class InvoiceResendRejected(Event):
    TOPIC: ClassVar[str] = "invoice.resend_rejected"
    event_type: Literal["invoice.resend_rejected"] = "invoice.resend_rejected"
    reason: Literal["unknown_invoice"]
    message: str


class InvoiceCreditNoteIssued(Event):
    """A fully canceled order whose invoice was already e-mailed gets a credit note: its own gapless number,
    the invoice's figures negated, e-mailed like the invoice. The invoice itself stays as it was."""

    TOPIC: ClassVar[str] = "invoice.credit_note_issued"
    event_type: Literal["invoice.credit_note_issued"] = "invoice.credit_note_issued"
    credit_note_reference: str
    invoice_reference: str
    store: str
    currency: CurrencyCode
    subtotal: MinorUnits
    expense_total: MinorUnits
    tax_total: MinorUnits
    grand_total: MinorUnits
    reason: str = ""
