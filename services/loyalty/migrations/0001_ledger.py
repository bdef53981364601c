"""Loyalty accounts, their append-only ledger, request ids and the outbox.

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

ENTRY_KINDS = ("EARN", "REDEEM", "GOODWILL", "REVERSE", "ADJUST", "RESERVE", "RELEASE", "CAPTURE", "EXPIRE")


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE accounts (
            id uuid PRIMARY KEY,
            balance bigint NOT NULL DEFAULT 0 CONSTRAINT accounts_balance_not_negative CHECK (balance >= 0),
            lifetime_earned bigint NOT NULL DEFAULT 0,
            lifetime_redeemed bigint NOT NULL DEFAULT 0,
            entry_count bigint NOT NULL DEFAULT 0 CHECK (entry_count >= 0),
            create_time timestamptz NOT NULL,
            creator text NOT NULL,
            update_time timestamptz NOT NULL
        )
        """
    )
    kinds = ", ".join(f"'{kind}'" for kind in ENTRY_KINDS)
    op.execute(
        f"""
        CREATE TABLE ledger_entries (
            account_id uuid NOT NULL REFERENCES accounts (id),
            entry bigint NOT NULL CHECK (entry > 0),
            kind text NOT NULL CHECK (kind IN ({kinds})),
            points bigint NOT NULL CHECK (points <> 0),
            balance_after bigint NOT NULL CHECK (balance_after >= 0),
            reason text NOT NULL,
            source_reference text NOT NULL DEFAULT '',
            request_id text NOT NULL DEFAULT '',
            reversed_entry bigint,
            actor text NOT NULL,
            create_time timestamptz NOT NULL,
            PRIMARY KEY (account_id, entry),
            FOREIGN KEY (account_id, reversed_entry) REFERENCES ledger_entries (account_id, entry),
            CHECK ((kind = 'REVERSE') = (reversed_entry IS NOT NULL))
        )
        """
    )
    # Each entry is reversed at most once, whatever the code above it does.
    op.execute(
        "CREATE UNIQUE INDEX ledger_entries_reversed_once ON ledger_entries (account_id, reversed_entry) "
        "WHERE reversed_entry IS NOT NULL"
    )
    # The ledger is append-only: corrections are new entries, never edits.
    op.execute(
        """
        CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
        "FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()"
    )
    for statement in IDEMPOTENCY_DDL:
        op.execute(statement)
    for statement in OUTBOX_DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE outbox, idempotency_keys, ledger_entries, accounts")
    op.execute("DROP FUNCTION ledger_entries_append_only()")
