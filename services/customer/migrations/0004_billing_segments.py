"""Billing facts (invoices, payments) and explainable segments with kept counters.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE invoices (
            customer_id uuid NOT NULL REFERENCES customers (id),
            invoice_id text NOT NULL,
            currency text NOT NULL,
            amount numeric(20, 2) NOT NULL CHECK (amount > 0),
            paid numeric(20, 2) NOT NULL DEFAULT 0 CHECK (paid >= 0),
            issue_date date NOT NULL,
            due_date date NOT NULL CHECK (due_date >= issue_date),
            create_time timestamptz NOT NULL,
            PRIMARY KEY (customer_id, invoice_id)
        )
        """
    )
    op.execute("CREATE INDEX invoices_customer_issue ON invoices (customer_id, issue_date DESC)")
    op.execute("CREATE INDEX invoices_customer_unpaid ON invoices (customer_id, due_date) WHERE paid < amount")
    op.execute(
        """
        CREATE TABLE payments (
            customer_id uuid NOT NULL REFERENCES customers (id),
            payment_id text NOT NULL,
            invoice_id text NOT NULL DEFAULT '',
            currency text NOT NULL,
            amount numeric(20, 2) NOT NULL CHECK (amount > 0),
            paid_date date NOT NULL,
            late boolean NOT NULL,
            create_time timestamptz NOT NULL,
            PRIMARY KEY (customer_id, payment_id)
        )
        """
    )
    op.execute("CREATE INDEX payments_customer_date ON payments (customer_id, paid_date DESC)")
    # Rules and thresholds are data: one row, changed through the API, versioned for etags.
    op.execute(
        """
        CREATE TABLE segmentation_config (
            id integer PRIMARY KEY CHECK (id = 1),
            config jsonb NOT NULL,
            version integer NOT NULL,
            update_time timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE segment_memberships (
            customer_id uuid NOT NULL REFERENCES customers (id),
            segment text NOT NULL,
            rule text NOT NULL,
            evidence jsonb NOT NULL,
            since timestamptz NOT NULL,
            PRIMARY KEY (customer_id, segment)
        )
        """
    )
    op.execute("CREATE INDEX segment_memberships_segment ON segment_memberships (segment, customer_id)")
    # Member counts kept with every membership change, so KPIs never count rows per request.
    op.execute(
        "CREATE TABLE segment_counts (segment text PRIMARY KEY, member_count bigint NOT NULL CHECK (member_count >= 0))"
    )
    op.execute(
        """
        CREATE TABLE customer_scores (
            customer_id uuid PRIMARY KEY REFERENCES customers (id),
            average_monthly_spend numeric(20, 2) NOT NULL DEFAULT 0,
            churn_risk_score double precision NOT NULL DEFAULT 0,
            churn_factors jsonb NOT NULL DEFAULT '[]',
            evaluate_time timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX customer_scores_spend ON customer_scores (average_monthly_spend DESC)")
    # Where the evaluator has read the outbox up to, and the VIP spend threshold of the last ranking.
    op.execute(
        """
        CREATE TABLE segmentation_state (
            id integer PRIMARY KEY CHECK (id = 1),
            outbox_position bigint NOT NULL DEFAULT 0,
            vip_spend_threshold numeric(20, 2),
            rank_time timestamptz
        )
        """
    )
    op.execute("INSERT INTO segmentation_state (id) VALUES (1)")


def downgrade() -> None:
    op.execute(
        "DROP TABLE segmentation_state, customer_scores, segment_counts, segment_memberships, "
        "segmentation_config, payments, invoices"
    )
