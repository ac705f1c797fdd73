"""order_state's tables (schema `order_state`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from services.runtime.messaging_tables import inbox_table, outbox_table

SCHEMA = "order_state"
metadata = MetaData(schema=SCHEMA)
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

sales_order = Table(
    "sales_order",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("order_reference", Text, nullable=False, unique=True),
    Column("custom_order_reference", Text),
    Column("store", Text, nullable=False),
    Column("locale", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("price_mode", Text, nullable=False),
    Column("customer_reference", Text),
    Column("customer", JSONB, nullable=False),
    Column("billing_address", JSONB, nullable=False),
    Column("payment_method", Text, nullable=False),
    Column("process_name", Text, nullable=False),
    Column("totals", JSONB, nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("placed_event_id", UUID(as_uuid=True), nullable=False),
)

sales_order_line = Table(
    "sales_order_line",
    metadata,
    Column("order_id", BigInteger, ForeignKey("sales_order.id", ondelete="CASCADE"), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("sku", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", BigInteger, nullable=False),
    Column("tax_rate", Numeric(6, 3), nullable=False),
    Column("is_quantity_splittable", Boolean, nullable=False),
    Column("shipment", JSONB, nullable=False),
    PrimaryKeyConstraint("order_id", "line_number"),
)

sales_order_item = Table(
    "sales_order_item",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("order_id", BigInteger, ForeignKey("sales_order.id", ondelete="CASCADE"), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("sku", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("state_changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_sales_order_item_order_id", "order_id"),
    Index("ix_sales_order_item_state", "state"),
)
