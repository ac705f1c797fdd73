"""shipping's tables (schema `shipping`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.runtime.messaging_tables import inbox_table, outbox_table

SCHEMA = "shipping"
metadata = MetaData(schema=SCHEMA)
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

shipment = Table(
    "shipment",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("order_reference", Text, nullable=False),
    Column("custom_order_reference", Text),
    Column("group_key", Text, nullable=False),
    Column("address", JSONB, nullable=False),
    Column("method_key", Text, nullable=False),
    Column("method", JSONB, nullable=False),
    Column("requested_delivery_date", Date),
    Column("expense_amount", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="new"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("order_reference", "group_key", name="uq_shipment_order_group"),
)

shipment_item = Table(
    "shipment_item",
    metadata,
    Column("item_id", BigInteger, primary_key=True),
    Column("shipment_id", BigInteger, ForeignKey("shipment.id", ondelete="CASCADE"), nullable=False),
    Column("order_reference", Text, nullable=False),
    Index("ix_shipment_item_shipment_id", "shipment_id"),
    Index("ix_shipment_item_order_reference", "order_reference"),
)

# The last state order_state reported for each item (item.state_changed): a shipment's status follows it,
# and items that are shipped, delivered or canceled cannot be moved.
item_state = Table(
    "item_state",
    metadata,
    Column("item_id", BigInteger, primary_key=True),
    Column("order_reference", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Index("ix_item_state_order_reference", "order_reference"),
)
