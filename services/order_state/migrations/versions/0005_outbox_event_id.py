"""outbox rows of events keep their event id; the relay makes their headers

The Kafka headers of an event (event_type, event_id, content-type) were stored as JSON with every row and
parsed back by the relay. An event's row now has its id in a column and the relay builds the headers from
topic and id; a dead letter still keeps its own headers (the original ones and the reason) as JSON.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=True), schema="order_state")


def downgrade() -> None:
    # Rows waiting for the relay get their event headers back as JSON before the column goes.
    op.execute(
        """UPDATE order_state.outbox SET headers = jsonb_build_array(
               jsonb_build_array('event_type', topic), jsonb_build_array('event_id', event_id::text),
               jsonb_build_array('content-type', 'application/json'))
           WHERE event_id IS NOT NULL"""
    )
    op.drop_column("outbox", "event_id", schema="order_state")
