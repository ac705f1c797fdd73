"""outbox values over 1 kB are kept compressed with lz4 (value_codec)

PostgreSQL wrote each outbox row in full twice (table and write-ahead log) and deleted it milliseconds later:
46 us of its CPU for a 4 kB order.created, 26 once compressed (bench/bench_outbox.py). The relay publishes
values as they were written.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:40:00
"""

from services.runtime.messaging_tables import add_value_codec, drop_value_codec

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_value_codec("shipping")


def downgrade() -> None:
    drop_value_codec("shipping")
