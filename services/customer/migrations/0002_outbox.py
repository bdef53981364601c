"""The customer service's outbox of domain events.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from chassis.outbox import OUTBOX_DDL

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in OUTBOX_DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE outbox")
