"""order_state's tables (schema `order_state`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import INT8MULTIRANGE, JSON, UUID

from services.runtime.messaging_tables import inbox_table, outbox_table

SCHEMA = "order_state"
metadata = MetaData(schema=SCHEMA)
inbox = inbox_table(metadata)
outbox = outbox_table(metadata)

# Order and item ids come in blocks of ID_BLOCK: each value of their identity sequences stands for the ids
# from it to it + ID_BLOCK - 1, which placement reserves for a batch at once (migration 0011).
ID_BLOCK = 64

sales_order = Table(
    "sales_order",
    metadata,
    Column("id", BigInteger, Identity(increment=ID_BLOCK), primary_key=True),
    Column("order_reference", Text, nullable=False, unique=True),
    Column("custom_order_reference", Text),
    Column("store", Text, nullable=False),
    Column("locale", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("price_mode", Text, nullable=False),
    Column("customer_reference", Text),
    # JSON checked, not parsed into jsonb: nothing searches inside them (migration 0009).
    Column("customer", JSON, nullable=False),
    Column("billing_address", JSON, nullable=False),
    Column("payment_method", Text, nullable=False),
    Column("process_name", Text, nullable=False),
    Column("totals", JSON, nullable=False),
    # The lines as placed, each with its items as id ranges: they never change, so they stay with the order
    # instead of one row each (migration 0006). JSON kept as text: order_state writes it from JSON it has just
    # serialised and reads it back only for each line's SKU, item quantity and id ranges (migration 0009).
    # A line's `shipment` is the index of its shipment in `shipments`, which holds each distinct shipment of the
    # order once (a JSON array): an ordinary order's lines share one, which order.created repeats on every line
    # (its `lines` are these with each index replaced by its shipment; migration 0015).
    Column("lines", Text, nullable=False),
    Column("shipments", Text, nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("placed_event_id", UUID(as_uuid=True), nullable=False),
    # Rows up to 8 kB stay uncompressed: pglz cost PostgreSQL a fifth of the row's write (migration 0008).
    postgresql_with={"toast_tuple_target": 8160},
)

# An order's items, as groups: a row holds the ids (an int8multirange) of the items of one order that are in the
# same state since the same moment and in the same shipment, so an ordinary order placed is one row, and so is
# an order of 100,000 items; an event that moves some of a group's items splits it (migration 0014). What an
# item is (line, SKU, quantity) is on the order's lines, which keep their items' id ranges. The view
# `sales_order_item` has one row per item (id, order_id, line_number, sku, quantity, state, state_changed_at,
# shipment_id) for reading; item ids come from the sequence `sales_order_item_id_seq`, in blocks of ID_BLOCK.
sales_order_item_group = Table(
    "sales_order_item_group",
    metadata,
    Column("order_id", BigInteger, nullable=False),  # no foreign key: see migration 0003
    Column("item_ids", INT8MULTIRANGE, nullable=False),
    Column("state", Text, nullable=False),
    Column("state_changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("shipment_id", BigInteger),
    # Every query takes groups by order. No index on state: who needs items by state asks state_timeout /
    # state_condition_check, which point at (order, state, entry time).
    Index("ix_sales_order_item_group_order_id", "order_id"),
)

# Every state change, for a group of items at once: the items are a multirange of ids, so one event on
# 100,000 items is one row. The view item_state_history has one row per item.
item_state_history = Table(
    "sales_order_item_state_history",
    metadata,
    Column("id", BigInteger, Identity(), nullable=False),
    Column("order_id", BigInteger, nullable=False),  # no foreign key: see migration 0003
    Column("item_ids", INT8MULTIRANGE, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("from_state", Text),
    Column("to_state", Text, nullable=False),
    Column("event", Text),
    # Placement leaves it to the default: the transaction's start, the new items' entry time (migration 0010).
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Keyed by order first, like the items: the order page reads an order's history in id order (migration 0013).
    PrimaryKeyConstraint("order_id", "id"),
)

# A due time for the items that entered `state` at `entered_at` (their state_changed_at): one row per
# group, not per item. An item that leaves the state no longer matches, so its timeout is gone with it.
# Keyed by that entry (writing one twice is a no-op), no id of its own (migration 0013).
state_timeout = Table(
    "state_timeout",
    metadata,
    Column("order_id", BigInteger, nullable=False),  # no foreign key: see migration 0003
    Column("state", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("entered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("due_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("order_id", "state", "event", "entered_at"),
    Index("ix_state_timeout_due_at", "due_at"),
)

# Items that entered a state with transitions without an event, re-checked periodically until they leave.
state_condition_check = Table(
    "state_condition_check",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("order_id", BigInteger, nullable=False),  # no foreign key: see migration 0003
    Column("state", Text, nullable=False),
    Column("entered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("next_check_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("order_id", "state", "entered_at", name="uq_state_condition_check_entry"),
    Index("ix_state_condition_check_next", "next_check_at"),
)

# Commands run (and failed) on transitions, for the order page and for support.
transition_log = Table(
    "transition_log",
    metadata,
    Column("id", BigInteger, Identity(), nullable=False),
    Column("order_id", BigInteger, nullable=False),  # no foreign key: see migration 0003
    Column("event", Text),
    Column("command", Text),
    Column("source_state", Text, nullable=False),
    Column("target_state", Text, nullable=False),
    Column("item_ids", INT8MULTIRANGE, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("order_id", "id"),  # keyed by order first, like the history (migration 0013)
)
