"""The program's holdings kept as counters: the points held (available and reserved) and the open
accounts per tier, maintained by a trigger on accounts in the transaction of every change, so that
the program's figures read a fixed number of rows instead of every account.

The counters are split over 1,024 slots by a hash of the account, so that postings to different
accounts seldom wait on the same counter row; only sums over all slots mean anything.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SLOTS = 1024

_COUNTERS = (
    f"""
    CREATE FUNCTION holdings_slot(account uuid) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT hashtext(account::text) & {SLOTS - 1} $$
    """,
    """
    CREATE TABLE points_held (
        slot integer PRIMARY KEY,
        points bigint NOT NULL CONSTRAINT points_held_not_negative CHECK (points >= 0)
    ) WITH (fillfactor = 50)
    """,
    f"INSERT INTO points_held (slot, points) SELECT slot, 0 FROM generate_series(0, {SLOTS - 1}) AS slot",
    """
    CREATE TABLE tier_members (
        slot integer NOT NULL,
        tier text NOT NULL,
        -- No CHECK here: INSERT ... ON CONFLICT checks the row it proposes (-1 for a tier left) first.
        accounts bigint NOT NULL,
        PRIMARY KEY (slot, tier)
    ) WITH (fillfactor = 50)
    """,
    """
    UPDATE points_held p SET points = a.points
    FROM (SELECT holdings_slot(id) AS slot, sum(balance + reserved) AS points FROM accounts GROUP BY 1) a
    WHERE p.slot = a.slot
    """,
    """
    INSERT INTO tier_members (slot, tier, accounts)
    SELECT holdings_slot(id), tier, count(*) FROM accounts WHERE state = 'ACTIVE' GROUP BY 1, 2
    """,
)

# Every change of an account's points, tier or state moves the counters of its slot: the points
# held by the change, an open account from the tier it left to the one it joined. Tier rows are
# taken in the order of their names, so that two changes in one slot never wait on each other in turn.
_KEEP_HOLDINGS = (
    """
    CREATE FUNCTION accounts_keep_holdings() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        slot_of_account integer := holdings_slot(NEW.id);
        held_before bigint := 0;
        member_before text;
        member_now text;
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            held_before := OLD.balance + OLD.reserved;
            member_before := CASE WHEN OLD.state = 'ACTIVE' THEN OLD.tier END;
        END IF;
        member_now := CASE WHEN NEW.state = 'ACTIVE' THEN NEW.tier END;
        IF NEW.balance + NEW.reserved <> held_before THEN
            UPDATE points_held h SET points = h.points + (NEW.balance + NEW.reserved - held_before)
            WHERE h.slot = slot_of_account;
        END IF;
        IF member_before IS DISTINCT FROM member_now THEN
            INSERT INTO tier_members AS m (slot, tier, accounts)
            SELECT slot_of_account, change.tier, change.accounts
            FROM (VALUES (member_before, -1), (member_now, 1)) AS change (tier, accounts)
            WHERE change.tier IS NOT NULL
            ORDER BY change.tier
            ON CONFLICT (slot, tier) DO UPDATE SET accounts = m.accounts + EXCLUDED.accounts;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER accounts_keep_holdings_opened AFTER INSERT ON accounts "
    "FOR EACH ROW EXECUTE FUNCTION accounts_keep_holdings()",
    "CREATE TRIGGER accounts_keep_holdings_changed AFTER UPDATE OF balance, reserved, tier, state ON accounts "
    "FOR EACH ROW WHEN (OLD.balance + OLD.reserved <> NEW.balance + NEW.reserved OR OLD.tier <> NEW.tier "
    "OR OLD.state <> NEW.state) EXECUTE FUNCTION accounts_keep_holdings()",
)


def upgrade() -> None:
    for statement in (*_COUNTERS, *_KEEP_HOLDINGS):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER accounts_keep_holdings_changed ON accounts")
    op.execute("DROP TRIGGER accounts_keep_holdings_opened ON accounts")
    op.execute("DROP FUNCTION accounts_keep_holdings")
    op.execute("DROP TABLE tier_members, points_held")
    op.execute("DROP FUNCTION holdings_slot")
