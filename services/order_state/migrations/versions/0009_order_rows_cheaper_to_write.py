"""order rows and item rows cheaper to write

Placement writes one order row and about eight item rows per ordinary order, and PostgreSQL's share of that
was checking JSON it had no need to check and keeping an index no query needed:

- `customer`, `billing_address`, `totals`: jsonb -> json. Nothing indexes or searches them; jsonb parsed each
  into its binary form on every insert, json only checks it (`->>` works on both).
- `lines`: json -> text. Written only by order_state, from JSON it has just serialised, and read only to be
  published again; PostgreSQL's check of about 3 kB per order was a third of the row's write. It stays JSON
  (`lines::json` in a query).
- sales_order_item: primary key (order_id, id) instead of (id) plus an index on order_id. Every query takes
  items by order (and then by id, shipment or state), so one index serves them all.

`bench/bench_order_rows.py` (20,000 ordinary orders, 2026-12-02): PostgreSQL's CPU for the order rows 44 -> 21 us
per order (2.1x), for the item rows 28 -> 21 us (1.4x). The upgrade rewrites both tables.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 08:10:00
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """ALTER TABLE order_state.sales_order
               ALTER COLUMN customer TYPE json USING customer::json,
               ALTER COLUMN billing_address TYPE json USING billing_address::json,
               ALTER COLUMN totals TYPE json USING totals::json,
               ALTER COLUMN lines TYPE text USING lines::text"""
    )
    op.execute("ALTER TABLE order_state.sales_order_item DROP CONSTRAINT sales_order_item_pkey")
    op.execute("ALTER TABLE order_state.sales_order_item ADD PRIMARY KEY (order_id, id)")
    op.execute("DROP INDEX order_state.ix_sales_order_item_order_id")


def downgrade() -> None:
    op.execute("CREATE INDEX ix_sales_order_item_order_id ON order_state.sales_order_item (order_id)")
    op.execute("ALTER TABLE order_state.sales_order_item DROP CONSTRAINT sales_order_item_pkey")
    op.execute("ALTER TABLE order_state.sales_order_item ADD PRIMARY KEY (id)")
    op.execute(
        """ALTER TABLE order_state.sales_order
               ALTER COLUMN customer TYPE jsonb USING customer::jsonb,
               ALTER COLUMN billing_address TYPE jsonb USING billing_address::jsonb,
               ALTER COLUMN totals TYPE jsonb USING totals::jsonb,
               ALTER COLUMN lines TYPE json USING lines::json"""
    )
