"""The gateway's audit trail: one row per audited call, append-only.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No CHECKs on the values: a batch the database refused would hold back every record behind it;
    # the gateway's AuditRecord validates them instead.
    op.execute(
        """
        CREATE TABLE audit_records (
            id bigserial PRIMARY KEY,
            time timestamptz NOT NULL,
            subject text NOT NULL,
            caller_kind text NOT NULL,
            roles text[] NOT NULL DEFAULT '{}',
            tenant text NOT NULL DEFAULT '',
            method text NOT NULL,
            resource text NOT NULL DEFAULT '',
            outcome text NOT NULL,
            reason text NOT NULL DEFAULT '',
            trace_id text NOT NULL DEFAULT '',
            -- Written by the gateway: a batch retried after a lost commit acknowledgement adds nothing.
            record_id uuid NOT NULL UNIQUE
        )
        """
    )
    # Pages read newest first by keyset (time, id); each filter reads its own index in the same order.
    op.execute("CREATE INDEX audit_records_newest_first ON audit_records (time DESC, id DESC)")
    op.execute("CREATE INDEX audit_records_by_subject ON audit_records (subject, time DESC, id DESC)")
    op.execute("CREATE INDEX audit_records_by_method ON audit_records (method, time DESC, id DESC)")
    op.execute("CREATE INDEX audit_records_by_outcome ON audit_records (outcome, time DESC, id DESC)")
    # The trail is evidence: nothing may change or remove a record once written, whatever the code above.
    op.execute(
        """
        CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
                USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    # Statement-level, so that even an UPDATE or DELETE matching no row is refused, and TRUNCATE too.
    op.execute(
        "CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_records "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE audit_records")
    op.execute("DROP FUNCTION audit_records_append_only()")
