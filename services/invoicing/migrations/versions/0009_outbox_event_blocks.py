"""outbox rows may hold a block of a transaction's events (event_count)

Most of what an outbox row costs PostgreSQL does not depend on its size (a heap tuple, a primary-key entry,
a delete, their write-ahead log): the events of one transaction are kept up to 32 to a row, framed and
compressed as one lz4 block (services/runtime/outbox_codec.py). Rows written before keep one event each
(event_count 1). Going back rewrites waiting blocks one event per row, in order.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 03:30:00
"""

from services.runtime.messaging_tables import add_event_count, drop_event_count

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_event_count("invoicing")


def downgrade() -> None:
    drop_event_count("invoicing")
