"""Next-best actions: action rules and the contact policy as data, the read model of customers'
segments and loyalty tiers, and the offers presented to customers with the take-up counted per rule
and segment (what propensity is learnt from, without reading the history on a request).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE action_rules (
            rule_id text PRIMARY KEY,
            display_name text NOT NULL,
            kind text NOT NULL,
            offering text NOT NULL,
            message text NOT NULL,
            market text NOT NULL,
            required_segments text[] NOT NULL,
            excluded_segments text[] NOT NULL,
            loyalty_tiers text[] NOT NULL,
            regions text[] NOT NULL,
            channels text[] NOT NULL,
            value double precision NOT NULL,
            business_weight double precision NOT NULL,
            active boolean NOT NULL,
            offer_validity_days integer NOT NULL,
            version integer NOT NULL,
            create_time timestamptz NOT NULL,
            update_time timestamptz NOT NULL,
            updater text NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE contact_policy (
            id integer PRIMARY KEY CHECK (id = 1),
            max_offers_per_week_per_channel integer NOT NULL,
            decline_cooldown_days integer NOT NULL,
            quiet_hours_start_hour integer NOT NULL,
            quiet_hours_end_hour integer NOT NULL,
            quiet_hours_channels text[] NOT NULL,
            version integer NOT NULL,
            update_time timestamptz NOT NULL,
            updater text NOT NULL
        )
        """
    )
    op.execute("INSERT INTO contact_policy VALUES (1, 2, 30, 21, 9, ARRAY['APP'], 1, now(), 'migration')")
    op.execute(
        """
        CREATE TABLE customer_segments (
            customer_id uuid PRIMARY KEY,
            segments text[] NOT NULL,
            churn_risk_score double precision NOT NULL,
            update_time timestamptz NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE loyalty_accounts (
            account text PRIMARY KEY,
            customer_id uuid NOT NULL,
            tier text NOT NULL,
            update_time timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX loyalty_accounts_customer ON loyalty_accounts (customer_id)")
    op.execute(
        """
        CREATE TABLE offer_presentations (
            id uuid PRIMARY KEY,
            customer_id uuid,
            rule_id text NOT NULL,
            kind text NOT NULL,
            offering text NOT NULL,
            channel text NOT NULL,
            segments text[] NOT NULL,
            priority double precision NOT NULL,
            presented_by text NOT NULL,
            present_time timestamptz NOT NULL,
            expire_time timestamptz NOT NULL,
            state text NOT NULL,
            decided_by text NOT NULL DEFAULT '',
            decide_channel text NOT NULL DEFAULT '',
            decide_time timestamptz,
            version integer NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX offer_presentations_customer ON offer_presentations (customer_id, present_time)")
    op.execute("CREATE INDEX offer_presentations_time ON offer_presentations (present_time)")
    op.execute("CREATE INDEX offer_presentations_open ON offer_presentations (expire_time) WHERE state = 'PRESENTED'")
    op.execute(
        """
        CREATE TABLE offer_take_up (
            rule_id text NOT NULL,
            segment text NOT NULL,
            presented bigint NOT NULL,
            accepted bigint NOT NULL,
            PRIMARY KEY (rule_id, segment)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "offer_take_up",
        "offer_presentations",
        "loyalty_accounts",
        "customer_segments",
        "contact_policy",
        "action_rules",
    ):
        op.execute(f"DROP TABLE {table}")
