"""invoicing's tables (schema `invoicing`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from services.runtime.messaging_tables import inbox_table, outbox_table

SCHEMA = "invoicing"
metadata = MetaData(schema=SCHEMA)
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

# What invoicing knows of each order (the order.created event), to invoice it when the process asks.
order_snapshot = Table(
    "order_snapshot",
    metadata,
    Column("order_reference", Text, primary_key=True),
    Column("payload", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Orders canceled in full before their invoice was made: order.canceled and order.created come through
# different topics, so the cancellation can arrive first; such an order is never invoiced.
canceled_order = Table(
    "canceled_order",
    metadata,
    Column("order_reference", Text, primary_key=True),
    Column("canceled_at", DateTime(timezone=True), nullable=False),
    Column("source_event_id", UUID(as_uuid=True), nullable=False),
)

invoice_sequence = Table(
    "invoice_sequence",
    metadata,
    Column("store", Text, primary_key=True),
    Column("last_number", BigInteger, nullable=False),
)

invoice = Table(
    "invoice",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("order_reference", Text, nullable=False, unique=True),
    Column("custom_order_reference", Text),
    Column("invoice_reference", Text, nullable=False, unique=True),
    Column("store", Text, nullable=False),
    Column("sequence_number", BigInteger, nullable=False),
    Column("locale", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("customer_email", Text, nullable=False),
    Column("billing_address", JSONB, nullable=False),
    Column("subtotal", BigInteger, nullable=False),
    Column("expense_total", BigInteger, nullable=False),
    Column("tax_total", BigInteger, nullable=False),
    Column("grand_total", BigInteger, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("source_event_id", UUID(as_uuid=True), nullable=False),
    UniqueConstraint("store", "sequence_number", name="uq_invoice_store_sequence"),
)

# A credit note cancels an invoice that was already sent: own gapless number per store, figures negated.
credit_note = Table(
    "credit_note",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("invoice_id", BigInteger, ForeignKey("invoice.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("credit_note_reference", Text, nullable=False, unique=True),
    Column("store", Text, nullable=False),
    Column("sequence_number", BigInteger, nullable=False),
    Column("subtotal", BigInteger, nullable=False),
    Column("expense_total", BigInteger, nullable=False),
    Column("tax_total", BigInteger, nullable=False),
    Column("grand_total", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("source_event_id", UUID(as_uuid=True), nullable=False),
)

invoice_email = Table(
    "invoice_email",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("invoice_id", BigInteger, ForeignKey("invoice.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", Text, nullable=False, server_default="invoice"),
    Column("recipient", Text, nullable=False),
    Column("recipient_name", Text),
    Column("requested_by", Text),
    # The request an e-mail was queued for (a resend), answered by the invoice.sent it causes.
    Column("request_event_id", UUID(as_uuid=True)),
    Column("correlation_id", UUID(as_uuid=True)),
    Column("bcc", ARRAY(Text), nullable=False, server_default="{}"),
    Column("message_id", Text, nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("body_text", Text, nullable=False),
    Column("body_html", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_invoice_email_due", "next_attempt_at", postgresql_where="status = 'pending'"),
)
