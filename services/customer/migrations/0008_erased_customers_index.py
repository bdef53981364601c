"""The erased customers by an index of their own: the usage folder asks, for every chunk of records,
which of their customers are erased, and reads this index (the few erased) instead of every customer.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX customers_erased ON customers (id) WHERE erase_time IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX customers_erased")
