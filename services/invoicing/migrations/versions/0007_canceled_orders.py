"""orders canceled before they were invoiced

order.canceled and order.created reach invoicing through different topics, so a cancellation can arrive
before the order: it is kept here, and such an order is never invoiced (no invoice, no e-mail).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 19:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canceled_order",
        sa.Column("order_reference", sa.Text(), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_event_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("order_reference"),
        schema="invoicing",
    )


def downgrade() -> None:
    op.drop_table("canceled_order", schema="invoicing")
