"""an e-mail sent on request remembers the request, so invoice.sent answers it

A resend is asked for by an invoice.resend_requested event; the e-mail it queues keeps that event's id and
correlation id, and the invoice.sent published when the mail server took it carries them (causation_id,
correlation_id): `oms invoice resend` waits for that answer like the other request commands.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoice_email", sa.Column("request_event_id", sa.UUID()), schema="invoicing")
    op.add_column("invoice_email", sa.Column("correlation_id", sa.UUID()), schema="invoicing")


def downgrade() -> None:
    op.drop_column("invoice_email", "correlation_id", schema="invoicing")
    op.drop_column("invoice_email", "request_event_id", schema="invoicing")
