"""When each customer churned, from the customer feed's status changes: what the retention effect of
offers is measured against.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE customer_churn (customer_id uuid PRIMARY KEY, churn_time timestamptz)")
    op.execute(
        "CREATE INDEX offer_presentations_decided ON offer_presentations (decide_time) WHERE decide_time IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX offer_presentations_decided")
    op.execute("DROP TABLE customer_churn")
