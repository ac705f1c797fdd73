"""entry times default to the transaction's start

Placement writes each new item's entry time (`sales_order_item.state_changed_at`), its history rows'
`changed_at`, its timeouts' and condition checks' `entered_at` (and first `next_check_at`): all the same moment,
the start of the placing transaction. Encoding a timestamp for COPY costs the driver 1-2 us in Python each
(asyncpg converts every datetime on its own), about ten per ordinary order. With `now()` as the columns' default,
placement leaves them out and PostgreSQL fills in the transaction's start: the same value for every row of the
transaction. `sales_order_item.state_changed_at` has had that default from the start (0001).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 20:00:00
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("sales_order_item_state_history", "changed_at"),
    ("state_timeout", "entered_at"),
    ("state_condition_check", "entered_at"),
    ("state_condition_check", "next_check_at"),
)


def upgrade() -> None:
    for table, column in _COLUMNS:
        op.execute(f"ALTER TABLE order_state.{table} ALTER COLUMN {column} SET DEFAULT now()")


def downgrade() -> None:
    for table, column in _COLUMNS:
        op.execute(f"ALTER TABLE order_state.{table} ALTER COLUMN {column} DROP DEFAULT")
