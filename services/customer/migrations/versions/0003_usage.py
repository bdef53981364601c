"""Usage records and per-line monthly usage profiles.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Ids of every record counted, so a replayed record adds nothing.
    op.execute(
        """
        CREATE TABLE usage_record_ids (
            record_id text PRIMARY KEY,
            subscription_id uuid NOT NULL,
            usage_date date NOT NULL
        )
        """
    )
    # Days with use, and days with roaming, per line: active and roaming days count each day once.
    op.execute(
        "CREATE TABLE usage_days (subscription_id uuid NOT NULL, usage_date date NOT NULL, "
        "PRIMARY KEY (subscription_id, usage_date))"
    )
    op.execute(
        "CREATE TABLE roaming_days (subscription_id uuid NOT NULL, usage_date date NOT NULL, "
        "PRIMARY KEY (subscription_id, usage_date))"
    )
    op.execute(
        """
        CREATE TABLE monthly_usage (
            subscription_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            month date NOT NULL,
            on_net_minutes double precision NOT NULL DEFAULT 0,
            off_net_minutes double precision NOT NULL DEFAULT 0,
            international_minutes double precision NOT NULL DEFAULT 0,
            sms_count bigint NOT NULL DEFAULT 0,
            data_mb double precision NOT NULL DEFAULT 0,
            active_days integer NOT NULL DEFAULT 0,
            roaming_days integer NOT NULL DEFAULT 0,
            record_count bigint NOT NULL DEFAULT 0,
            update_time timestamptz NOT NULL DEFAULT now(),
            -- Changed since its last MonthlyUsageUpdated event; the publisher clears it.
            dirty boolean NOT NULL DEFAULT true,
            PRIMARY KEY (subscription_id, month)
        )
        """
    )
    op.execute("CREATE INDEX monthly_usage_customer ON monthly_usage (customer_id, month)")
    op.execute("CREATE INDEX monthly_usage_dirty ON monthly_usage (subscription_id, month) WHERE dirty")
    op.execute(
        """
        CREATE TABLE monthly_usage_areas (
            subscription_id uuid NOT NULL,
            month date NOT NULL,
            area text NOT NULL,
            radio_technology text NOT NULL,
            record_count bigint NOT NULL DEFAULT 0,
            data_mb double precision NOT NULL DEFAULT 0,
            PRIMARY KEY (subscription_id, month, area, radio_technology)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE monthly_usage_areas, monthly_usage, roaming_days, usage_days, usage_record_ids")
