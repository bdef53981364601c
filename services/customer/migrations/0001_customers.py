"""Customers, lines, consent history and request ids.

Revision ID: 0001
Revises:
"""

from alembic import op

from chassis.idempotency import IDEMPOTENCY_DDL

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        """
        CREATE TABLE customers (
            id uuid PRIMARY KEY,
            party_type text NOT NULL CHECK (party_type IN ('individual', 'organization')),
            given_name text,
            family_name text,
            middle_name text,
            birth_date date,
            gender text,
            preferred_language text,
            legal_name text,
            trading_name text,
            tax_id text,
            organization_kind text,
            contact_media jsonb NOT NULL DEFAULT '[]',
            phone_numbers text[] NOT NULL DEFAULT '{}',
            region_key text NOT NULL DEFAULT '',
            search_key text NOT NULL,
            acquisition_channel text,
            retailer_id text NOT NULL DEFAULT '',
            status text NOT NULL,
            churn_reason text,
            churn_detail text NOT NULL DEFAULT '',
            create_time timestamptz NOT NULL,
            creator text NOT NULL,
            update_time timestamptz NOT NULL,
            updater text NOT NULL,
            version integer NOT NULL,
            delete_time timestamptz,
            CHECK ((party_type = 'individual') = (given_name IS NOT NULL AND family_name IS NOT NULL)),
            CHECK ((party_type = 'organization') = (legal_name IS NOT NULL)),
            CHECK ((status = 'CHURNED') = (churn_reason IS NOT NULL))
        )
        """
    )
    # Search: every criterion has an index that serves it, live customers only.
    op.execute(
        "CREATE INDEX customers_search_key_trgm ON customers USING gin (search_key gin_trgm_ops) "
        "WHERE delete_time IS NULL"
    )
    op.execute("CREATE INDEX customers_phone_numbers ON customers USING gin (phone_numbers) WHERE delete_time IS NULL")
    op.execute("CREATE INDEX customers_status ON customers (status, id) WHERE delete_time IS NULL")
    op.execute("CREATE INDEX customers_region ON customers (region_key, id) WHERE delete_time IS NULL")
    op.execute(
        "CREATE INDEX customers_retailer ON customers (retailer_id, id) WHERE delete_time IS NULL AND retailer_id <> ''"
    )
    op.execute(
        """
        CREATE TABLE subscriptions (
            id uuid PRIMARY KEY,
            customer_id uuid NOT NULL REFERENCES customers (id),
            msisdn text NOT NULL,
            tariff_plan_id text NOT NULL,
            activation_date date NOT NULL,
            status text NOT NULL,
            purpose text NOT NULL,
            home_region text NOT NULL DEFAULT '',
            create_time timestamptz NOT NULL,
            update_time timestamptz NOT NULL,
            version integer NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX subscriptions_customer ON subscriptions (customer_id, id)")
    op.execute("CREATE INDEX subscriptions_msisdn ON subscriptions (msisdn)")
    # One number, one line in service: the database refuses a second even under a race.
    op.execute(
        "CREATE UNIQUE INDEX subscriptions_msisdn_in_service ON subscriptions (msisdn) WHERE status <> 'TERMINATED'"
    )
    op.execute(
        """
        CREATE TABLE consent_records (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            customer_id uuid NOT NULL REFERENCES customers (id),
            purpose text NOT NULL,
            decision text NOT NULL CHECK (decision IN ('GRANTED', 'DENIED', 'REVOKED')),
            channel text NOT NULL,
            record_time timestamptz NOT NULL,
            recorder text NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX consent_records_customer ON consent_records (customer_id, id DESC)")
    op.execute("CREATE INDEX consent_records_customer_purpose ON consent_records (customer_id, purpose, id DESC)")
    for statement in IDEMPOTENCY_DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE idempotency_keys, consent_records, subscriptions, customers")
