"""outbox rows stored uncompressed and inline

Outbox rows live for milliseconds (the relay deletes them once published), yet an event over 2 kB (an
order.created of five lines is about 4.5 kB) was compressed into a TOAST table on the way in: a third of
the outbox's write cost. Rows up to 8 kB now stay in the table as they are; larger ones are moved out of
line without compression.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:30:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE shipping.outbox SET (toast_tuple_target = 8160)")
    op.execute("ALTER TABLE shipping.outbox ALTER COLUMN value SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE shipping.outbox ALTER COLUMN value SET STORAGE EXTENDED")
    op.execute("ALTER TABLE shipping.outbox RESET (toast_tuple_target)")
