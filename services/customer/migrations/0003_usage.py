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
    # Every record counted, once: the key refuses a replayed record id. The inserting transaction's id
    # tells the folder which records are final (see services/customer/usage/store.py).
    op.execute(
        """
        CREATE TABLE usage_records (
            record_id text PRIMARY KEY,
            subscription_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            usage_date date NOT NULL,
            on_net_minutes double precision NOT NULL,
            off_net_minutes double precision NOT NULL,
            international_minutes double precision NOT NULL,
            sms_count bigint NOT NULL,
            data_mb double precision NOT NULL,
            roaming boolean NOT NULL,
            area text NOT NULL,
            radio_technology text NOT NULL,
            ingest_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            seq bigint GENERATED ALWAYS AS IDENTITY
        )
        """
    )
    op.execute("CREATE INDEX usage_records_fold_order ON usage_records (ingest_xid, seq)")
    # How far the folder has folded: every transaction below `done_below` is folded; within the pass
    # towards the next horizon, records up to (after_xid, after_seq).
    op.execute(
        """
        CREATE TABLE usage_fold_state (
            id integer PRIMARY KEY CHECK (id = 1),
            done_below xid8 NOT NULL DEFAULT '0',
            after_xid xid8 NOT NULL DEFAULT '0',
            after_seq bigint NOT NULL DEFAULT 0
        )
        """
    )
    op.execute("INSERT INTO usage_fold_state (id) VALUES (1)")
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
            -- Bit d-1 set: the line was used (roaming) on day d; the counts are the bits set.
            active_day_mask integer NOT NULL DEFAULT 0,
            roaming_day_mask integer NOT NULL DEFAULT 0,
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
    op.execute("DROP TABLE monthly_usage_areas, monthly_usage, usage_fold_state, usage_records")
