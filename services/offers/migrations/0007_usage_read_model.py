"""Each line's monthly usage as the customer feed announces it: what next-best actions check coverage
and technology on without asking the customer service on every decision.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE line_usage_months (
            subscription_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            month date NOT NULL,
            usage bytea NOT NULL,
            update_time timestamptz NOT NULL,
            PRIMARY KEY (subscription_id, month)
        )
        """
    )
    op.execute("CREATE INDEX line_usage_months_customer ON line_usage_months (customer_id)")


def downgrade() -> None:
    op.execute("DROP TABLE line_usage_months")
