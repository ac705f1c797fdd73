"""outbox rows stored uncompressed and inline

Outbox rows live for milliseconds (the relay deletes them once published), yet an event over 2 kB (an
order.created of five lines is about 4.5 kB) was compressed into a TOAST table on the way in: a third of
the outbox's write cost. Rows up to 8 kB now stay in the table as they are; larger ones are moved out of
line without compression.

A line's shipment is kept as the JSON checkout sent (json, not jsonb): nothing queries inside it, and
converting it to jsonb cost more server time than the rest of the line.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:30:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE order_state.outbox SET (toast_tuple_target = 8160)")
    op.execute("ALTER TABLE order_state.outbox ALTER COLUMN value SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE order_state.sales_order_line ALTER COLUMN shipment TYPE json")


def downgrade() -> None:
    op.execute("ALTER TABLE order_state.sales_order_line ALTER COLUMN shipment TYPE jsonb USING shipment::jsonb")
    op.execute("ALTER TABLE order_state.outbox ALTER COLUMN value SET STORAGE EXTENDED")
    op.execute("ALTER TABLE order_state.outbox RESET (toast_tuple_target)")
