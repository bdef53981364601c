"""The catalog: offerings with every version kept, request ids and the outbox.

Revision ID: 0001
Revises:
"""

from alembic import op

from chassis.idempotency import IDEMPOTENCY_DDL
from chassis.outbox import OUTBOX_DDL

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE product_offering_versions (
            name text NOT NULL,
            version bigint NOT NULL CHECK (version > 0),
            kind text NOT NULL CHECK (kind IN ('TARIFF_PLAN', 'ADD_ON_BUNDLE')),
            display_name text NOT NULL,
            description text NOT NULL DEFAULT '',
            market text NOT NULL,
            currency text NOT NULL,
            price_model text NOT NULL CHECK (price_model IN ('MONTHLY', 'PER_CALENDAR_DAY', 'PER_DAY_OF_USE')),
            price_minor bigint NOT NULL CHECK (price_minor > 0),
            on_net_minutes bigint NOT NULL CHECK (on_net_minutes >= 0),
            unlimited_on_net_minutes boolean NOT NULL,
            off_net_minutes bigint NOT NULL CHECK (off_net_minutes >= 0),
            unlimited_off_net_minutes boolean NOT NULL,
            sms bigint NOT NULL CHECK (sms >= 0),
            unlimited_sms boolean NOT NULL,
            data_mb bigint NOT NULL CHECK (data_mb >= 0),
            unlimited_data boolean NOT NULL,
            overage_on_net_minute_minor bigint NOT NULL CHECK (overage_on_net_minute_minor >= 0),
            overage_off_net_minute_minor bigint NOT NULL CHECK (overage_off_net_minute_minor >= 0),
            overage_sms_minor bigint NOT NULL CHECK (overage_sms_minor >= 0),
            overage_data_mb_minor bigint NOT NULL CHECK (overage_data_mb_minor >= 0),
            required_technology smallint NOT NULL,
            regions text[] NOT NULL,
            start_time timestamptz,
            end_time timestamptz,
            lifecycle text NOT NULL CHECK (lifecycle IN ('ACTIVE', 'RETIRED')),
            promoted boolean NOT NULL,
            create_time timestamptz NOT NULL,
            update_time timestamptz NOT NULL,
            retire_time timestamptz,
            author text NOT NULL,
            PRIMARY KEY (name, version)
        )
        """
    )
    # Versions are evidence of what customers accepted: a change is a new version, never an edit.
    op.execute(
        """
        CREATE FUNCTION product_offering_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'offering versions are append-only' USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER product_offering_versions_append_only BEFORE UPDATE OR DELETE ON product_offering_versions "
        "FOR EACH ROW EXECUTE FUNCTION product_offering_versions_append_only()"
    )
    op.execute(
        """
        CREATE TABLE product_offerings (
            name text PRIMARY KEY,
            kind text NOT NULL,
            market text NOT NULL,
            lifecycle text NOT NULL,
            version bigint NOT NULL,
            FOREIGN KEY (name, version) REFERENCES product_offering_versions (name, version)
                DEFERRABLE INITIALLY DEFERRED
        )
        """
    )
    op.execute("CREATE INDEX product_offerings_market ON product_offerings (market, kind, name)")
    for statement in IDEMPOTENCY_DDL:
        op.execute(statement)
    for statement in OUTBOX_DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE outbox_pruned")
    op.execute("DROP TABLE outbox")
    op.execute("DROP TABLE idempotency_keys")
    op.execute("DROP TABLE product_offerings")
    op.execute("DROP TABLE product_offering_versions")
    op.execute("DROP FUNCTION product_offering_versions_append_only")
