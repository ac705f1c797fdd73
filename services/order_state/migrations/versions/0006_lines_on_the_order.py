"""an order keeps its lines as placed, with their item id ranges, instead of one row per line

Lines never change once placed and nothing looked them up one by one; the items (one row each) are what the
state machine moves. Writing five line rows and their index entries per order was a fifth of placement's
database time. The order's `lines` is the `lines` array of its order.created: each line as placed (sku,
name, quantity, unit price, tax rate, flags, shipment) with `item_id_ranges`, `item_count` and
`item_quantity`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sales_order", sa.Column("lines", sa.JSON(), nullable=True), schema="order_state")
    op.execute(
        """
        UPDATE order_state.sales_order o SET lines = l.lines
        FROM (
            SELECT l.order_id, json_agg(json_build_object(
                       'line_number', l.line_number, 'sku', l.sku, 'name', l.name, 'quantity', l.quantity,
                       'unit_price', l.unit_price, 'tax_rate', l.tax_rate,
                       'is_quantity_splittable', l.is_quantity_splittable, 'is_bundle', false,
                       'item_id_ranges', coalesce(
                           (SELECT json_agg(json_build_array(lower(r), upper(r) - 1) ORDER BY lower(r))
                            FROM unnest(i.ids) AS r), '[]'::json),
                       'item_count', coalesce(i.count, 0), 'item_quantity', coalesce(i.quantity, l.quantity),
                       'shipment', l.shipment) ORDER BY l.line_number) AS lines
            FROM order_state.sales_order_line l
            LEFT JOIN (
                SELECT order_id, line_number, range_agg(int8range(id, id + 1)) AS ids, count(*) AS count,
                       min(quantity) AS quantity
                FROM order_state.sales_order_item GROUP BY order_id, line_number
            ) i ON i.order_id = l.order_id AND i.line_number = l.line_number
            GROUP BY l.order_id
        ) l
        WHERE l.order_id = o.id
        """
    )
    op.execute("UPDATE order_state.sales_order SET lines = '[]' WHERE lines IS NULL")
    op.alter_column("sales_order", "lines", nullable=False, schema="order_state")
    op.drop_table("sales_order_line", schema="order_state")


def downgrade() -> None:
    op.create_table(
        "sales_order_line",
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.BigInteger(), nullable=False),
        sa.Column("tax_rate", sa.Numeric(6, 3), nullable=False),
        sa.Column("is_quantity_splittable", sa.Boolean(), nullable=False),
        sa.Column("shipment", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "line_number"),
        schema="order_state",
    )
    op.execute(
        """
        INSERT INTO order_state.sales_order_line
        SELECT o.id, (l->>'line_number')::int, l->>'sku', l->>'name', (l->>'quantity')::int,
               (l->>'unit_price')::bigint, (l->>'tax_rate')::numeric, (l->>'is_quantity_splittable')::boolean,
               l->'shipment'
        FROM order_state.sales_order o, json_array_elements(o.lines) AS l
        """
    )
    op.drop_column("sales_order", "lines", schema="order_state")
