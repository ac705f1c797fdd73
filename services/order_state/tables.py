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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

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
    Column("shipment_id", BigInteger),
    Index("ix_sales_order_item_order_id", "order_id"),
    Index("ix_sales_order_item_state", "state"),
)

# Every state an item entered, with when and on which event (NULL from_state: created).
item_state_history = Table(
    "sales_order_item_state_history",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("item_id", BigInteger, ForeignKey("sales_order_item.id", ondelete="CASCADE"), nullable=False),
    Column("from_state", Text),
    Column("to_state", Text, nullable=False),
    Column("event", Text),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Index("ix_item_state_history_item_id", "item_id"),
)

# One due time per item and timeout event of the state the item is in; dropped when it leaves.
item_timeout = Table(
    "sales_order_item_timeout",
    metadata,
    Column("item_id", BigInteger, ForeignKey("sales_order_item.id", ondelete="CASCADE"), nullable=False),
    Column("event", Text, nullable=False),
    Column("order_id", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("item_id", "event"),
    Index("ix_item_timeout_due_at", "due_at"),
)

# Commands run (and failed) on transitions, for the order page and for support.
transition_log = Table(
    "transition_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("order_id", BigInteger, ForeignKey("sales_order.id", ondelete="CASCADE"), nullable=False),
    Column("event", Text),
    Column("command", Text),
    Column("source_state", Text, nullable=False),
    Column("target_state", Text, nullable=False),
    Column("item_ids", ARRAY(BigInteger), nullable=False),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_transition_log_order_id", "order_id"),
)
