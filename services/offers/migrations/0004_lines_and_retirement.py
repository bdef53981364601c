"""The local read model of lines built from the customer feed, the consumer's cursor and applied
event ids, and the lines of retired plans waiting for their proposal.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from chassis.event_consumer import CONSUMER_DDL

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE lines (
            subscription_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            tariff_plan text NOT NULL,
            home_region text NOT NULL,
            active boolean NOT NULL,
            update_time timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX lines_customer ON lines (customer_id)")
    op.execute("CREATE INDEX lines_active_on_plan ON lines (tariff_plan) WHERE active")
    op.execute(
        """
        CREATE TABLE retirement_proposals_due (
            retired_plan text NOT NULL,
            subscription_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            due_time timestamptz NOT NULL,
            PRIMARY KEY (retired_plan, subscription_id)
        )
        """
    )
    op.execute("CREATE INDEX retirement_proposals_due_time ON retirement_proposals_due (due_time)")
    # A retirement proposes a line one plan, once.
    op.execute(
        "CREATE UNIQUE INDEX plan_changes_one_retirement_proposal ON plan_changes (subscription_id, from_plan) "
        "WHERE origin = 'RETIREMENT'"
    )
    for statement in CONSUMER_DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE applied_events")
    op.execute("DROP TABLE event_cursors")
    op.execute("DROP INDEX plan_changes_one_retirement_proposal")
    op.execute("DROP TABLE retirement_proposals_due")
    op.execute("DROP TABLE lines")
