"""order rows up to 8 kB are stored as they are, not compressed

Since 0006 an order row carries its lines (an order of five lines is about 3.6 kB), so PostgreSQL compressed
every new order with pglz (the embedded server has no lz4). `bench/bench_order_rows.py` (20,000 rows written
with COPY, 2026-12-02): 1.36 s and 63 us of PostgreSQL CPU per order compressed, 1.00 s and 51 us as they
are (1.4x time, 1.2x CPU). Rows grow from about 1.5 kB to 4.2 kB on disk (2.9x); orders with many lines
(rows over 8 kB) are still compressed and moved out of line.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 06:20:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE order_state.sales_order SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    op.execute("ALTER TABLE order_state.sales_order RESET (toast_tuple_target)")
