"""The program as data, expiring point lots, tiers, reservations, the rewards catalog and the
customer facts that earning rules look at.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from chassis.event_consumer import CONSUMER_DDL

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE accounts
            ADD COLUMN reserved bigint NOT NULL DEFAULT 0
                CONSTRAINT accounts_reserved_not_negative CHECK (reserved >= 0),
            ADD COLUMN lifetime_expired bigint NOT NULL DEFAULT 0,
            ADD COLUMN tier text NOT NULL DEFAULT '',
            ADD COLUMN tier_review_time timestamptz,
            ADD COLUMN state text NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'CLOSED')),
            ADD COLUMN segments text[] NOT NULL DEFAULT '{}',
            ADD COLUMN regions text[] NOT NULL DEFAULT '{}',
            ADD COLUMN tenure_start date,
            ADD COLUMN next_anniversary date
        """
    )
    op.execute("CREATE INDEX accounts_tier_review ON accounts (tier_review_time) WHERE state = 'ACTIVE'")
    op.execute("CREATE INDEX accounts_next_anniversary ON accounts (next_anniversary) WHERE state = 'ACTIVE'")
    # A reservation moves points between available and reserved without changing their sum, so an
    # entry may leave `points` at zero when it changes the reserved points.
    op.execute(
        """
        ALTER TABLE ledger_entries
            DROP CONSTRAINT ledger_entries_points_check,
            ADD COLUMN reserved_change bigint NOT NULL DEFAULT 0,
            ADD COLUMN rule text NOT NULL DEFAULT '',
            ADD COLUMN source_key text NOT NULL DEFAULT '',
            ADD COLUMN source_event uuid,
            ADD COLUMN reservation uuid,
            ADD COLUMN expire_time timestamptz,
            ADD CONSTRAINT ledger_entries_moves_points CHECK (points <> 0 OR reserved_change <> 0),
            ADD CONSTRAINT ledger_entries_reservation_kinds
                CHECK ((kind IN ('RESERVE', 'RELEASE', 'CAPTURE')) = (reservation IS NOT NULL))
        """
    )
    # Each earning rule credits each business fact (event, anniversary, activation) at most once.
    op.execute(
        "CREATE UNIQUE INDEX ledger_entries_rule_source_once ON ledger_entries (account_id, rule, source_key) "
        "WHERE rule <> ''"
    )
    # A reservation is held once and settled (captured or released) once: a race has one winner.
    op.execute(
        "CREATE UNIQUE INDEX ledger_entries_reserved_once ON ledger_entries (account_id, reservation) "
        "WHERE kind = 'RESERVE'"
    )
    op.execute(
        "CREATE UNIQUE INDEX ledger_entries_settled_once ON ledger_entries (account_id, reservation) "
        "WHERE kind IN ('CAPTURE', 'RELEASE')"
    )
    op.execute("CREATE INDEX ledger_entries_time ON ledger_entries (create_time)")
    # Erasure may blank an entry's words; its numbers, kind and links stay as written.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE'
               AND (NEW.account_id, NEW.entry, NEW.kind, NEW.points, NEW.reserved_change, NEW.balance_after,
                    NEW.reversed_entry, NEW.rule, NEW.source_key, NEW.source_event, NEW.reservation,
                    NEW.expire_time, NEW.actor, NEW.create_time)
                   IS NOT DISTINCT FROM
                   (OLD.account_id, OLD.entry, OLD.kind, OLD.points, OLD.reserved_change, OLD.balance_after,
                    OLD.reversed_entry, OLD.rule, OLD.source_key, OLD.source_event, OLD.reservation,
                    OLD.expire_time, OLD.actor, OLD.create_time)
               AND NEW.reason = 'erased' AND NEW.source_reference = '' AND NEW.request_id = '' THEN
                RETURN NEW;
            END IF;
            RAISE EXCEPTION 'ledger entries are append-only' USING ERRCODE = 'integrity_constraint_violation';
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE point_lots (
            account_id uuid NOT NULL,
            lot bigint NOT NULL,
            earn_time timestamptz NOT NULL,
            expire_time timestamptz NOT NULL,
            points bigint NOT NULL CHECK (points > 0),
            remaining bigint NOT NULL CHECK (remaining >= 0 AND remaining <= points),
            qualifying bigint NOT NULL CHECK (qualifying >= 0),
            PRIMARY KEY (account_id, lot),
            FOREIGN KEY (account_id, lot) REFERENCES ledger_entries (account_id, entry)
        )
        """
    )
    op.execute("CREATE INDEX point_lots_spendable ON point_lots (account_id, expire_time, lot) WHERE remaining > 0")
    op.execute("CREATE INDEX point_lots_lapsing ON point_lots (expire_time) WHERE remaining > 0")
    op.execute(
        "CREATE INDEX point_lots_qualifying ON point_lots (account_id, earn_time) INCLUDE (qualifying) "
        "WHERE qualifying > 0"
    )
    op.execute(
        """
        CREATE TABLE lot_draws (
            account_id uuid NOT NULL,
            entry bigint NOT NULL,
            lot bigint NOT NULL,
            points bigint NOT NULL CHECK (points > 0),
            PRIMARY KEY (account_id, entry, lot),
            FOREIGN KEY (account_id, entry) REFERENCES ledger_entries (account_id, entry),
            FOREIGN KEY (account_id, lot) REFERENCES point_lots (account_id, lot)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE program_versions (
            version bigint PRIMARY KEY CHECK (version > 0),
            definition bytea NOT NULL,
            create_time timestamptz NOT NULL,
            creator text NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE rewards (
            id text PRIMARY KEY,
            definition bytea NOT NULL,
            create_time timestamptz NOT NULL,
            creator text NOT NULL
        )
        """
    )
    op.execute(
        """
        CREATE TABLE reward_stock (
            reward text NOT NULL REFERENCES rewards (id),
            partner text NOT NULL,
            available bigint NOT NULL CONSTRAINT reward_stock_available_not_negative CHECK (available >= 0),
            reserved bigint NOT NULL CONSTRAINT reward_stock_reserved_not_negative CHECK (reserved >= 0),
            PRIMARY KEY (reward, partner)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE reservations (
            account_id uuid NOT NULL REFERENCES accounts (id),
            id uuid NOT NULL,
            reward text NOT NULL REFERENCES rewards (id),
            partner text NOT NULL,
            points bigint NOT NULL CHECK (points > 0),
            state text NOT NULL CHECK (state IN ('HELD', 'CAPTURED', 'RELEASED', 'EXPIRED')),
            expire_time timestamptz NOT NULL,
            create_time timestamptz NOT NULL,
            settle_time timestamptz,
            reserve_entry bigint NOT NULL,
            settle_entry bigint,
            PRIMARY KEY (account_id, id),
            FOREIGN KEY (account_id, reserve_entry) REFERENCES ledger_entries (account_id, entry),
            FOREIGN KEY (account_id, settle_entry) REFERENCES ledger_entries (account_id, entry),
            CHECK ((state = 'HELD') = (settle_entry IS NULL))
        )
        """
    )
    op.execute("CREATE INDEX reservations_lapsing ON reservations (expire_time) WHERE state = 'HELD'")
    for statement in CONSUMER_DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute(
        "DROP TABLE applied_events, event_cursors, reservations, reward_stock, rewards, program_versions, "
        "lot_draws, point_lots"
    )
    op.execute(
        """
        ALTER TABLE ledger_entries
            DROP CONSTRAINT ledger_entries_moves_points,
            DROP CONSTRAINT ledger_entries_reservation_kinds,
            DROP COLUMN reserved_change, DROP COLUMN rule, DROP COLUMN source_key, DROP COLUMN source_event,
            DROP COLUMN reservation, DROP COLUMN expire_time,
            ADD CONSTRAINT ledger_entries_points_check CHECK (points <> 0)
        """
    )
    op.execute(
        "ALTER TABLE accounts DROP COLUMN reserved, DROP COLUMN lifetime_expired, DROP COLUMN tier, "
        "DROP COLUMN tier_review_time, DROP COLUMN state, DROP COLUMN segments, DROP COLUMN regions, "
        "DROP COLUMN tenure_start, DROP COLUMN next_anniversary"
    )
