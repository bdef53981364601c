"""Postings in one statement: each account keeps its qualifying points as a running total over a
window that moves forward, spendable lots are read soonest-lapsing first only as far as a debit
needs, and the API's earnings, goodwill and redemptions are written by one database function
(`post_points`) that claims the request id, locks the account, writes the entry, its lot or draws,
the tier, the events and the stored answer.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Protobuf's wire format for the few fields the database adds to messages built by the service:
# a varint, a string field and an unsigned integer field (proto3: a default value is left out).
_PROTOBUF_ENCODING = (
    """
    CREATE FUNCTION protobuf_varint(value bigint) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
    DECLARE
        encoded bytea := '';
    BEGIN
        IF value < 0 THEN
            RAISE EXCEPTION 'protobuf_varint encodes non-negative numbers, not %', value;
        END IF;
        WHILE value >= 128 LOOP
            encoded := encoded || set_byte('\\x00'::bytea, 0, (value % 128 + 128)::int);
            value := value / 128;
        END LOOP;
        RETURN encoded || set_byte('\\x00'::bytea, 0, value::int);
    END
    $$
    """,
    """
    CREATE FUNCTION protobuf_text_field(field integer, value text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT CASE WHEN value = '' THEN ''::bytea
               ELSE protobuf_varint(field * 8 + 2) || protobuf_varint(octet_length(convert_to(value, 'UTF8')))
                    || convert_to(value, 'UTF8') END
    $$
    """,
    """
    CREATE FUNCTION protobuf_uint_field(field integer, value bigint) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT CASE WHEN value = 0 THEN ''::bytea ELSE protobuf_varint(field * 8) || protobuf_varint(value) END
    $$
    """,
    """
    CREATE FUNCTION protobuf_message_field(field integer, value bytea) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT protobuf_varint(field * 8 + 2) || protobuf_varint(octet_length(value)) || value
    $$
    """,
)

# accounts.qualifying_points = the qualifying points of the account's lots earned after
# accounts.qualifying_since. Moving the window start subtracts (or adds back) only the lots it
# passes, so the total costs the lots that left the window since the last look, not the history.
_QUALIFYING_WINDOW = (
    """
    ALTER TABLE accounts
        ADD COLUMN qualifying_points bigint NOT NULL DEFAULT 0
            CONSTRAINT accounts_qualifying_points_not_negative CHECK (qualifying_points >= 0),
        ADD COLUMN qualifying_since timestamptz NOT NULL DEFAULT '-infinity'
    """,
    """
    UPDATE accounts a SET qualifying_points = l.points
    FROM (SELECT account_id, sum(qualifying) AS points FROM point_lots WHERE qualifying > 0 GROUP BY account_id) l
    WHERE l.account_id = a.id
    """,
    """
    CREATE FUNCTION qualifying_points_earned(account uuid, earned_after timestamptz, earned_through timestamptz)
    RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT coalesce(sum(l.qualifying), 0)::bigint FROM point_lots l
        WHERE l.account_id = account AND l.qualifying > 0
          AND l.earn_time > earned_after AND l.earn_time <= earned_through
    $$
    """,
    """
    CREATE FUNCTION account_qualifying_points(account uuid, since timestamptz) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT a.qualifying_points - qualifying_points_earned(a.id, a.qualifying_since, since)
               + qualifying_points_earned(a.id, since, a.qualifying_since)
        FROM accounts a WHERE a.id = account
    $$
    """,
)

# Lot `first_lot` (when given) and then the lots that lapse soonest, only as many as cover `points`:
# an index scan that stops, however many lots the account holds.
_LOTS_COVERING = """
    CREATE FUNCTION lots_covering(account uuid, points bigint, first_lot bigint)
    RETURNS TABLE (lot bigint, expire_time timestamptz, remaining bigint)
    LANGUAGE plpgsql STABLE AS $$
    DECLARE
        spendable record;
        covered bigint := 0;
    BEGIN
        IF points <= 0 THEN
            RETURN;
        END IF;
        FOR spendable IN
            SELECT l.lot, l.expire_time, l.remaining FROM point_lots l
            WHERE l.account_id = account AND l.lot = first_lot AND l.remaining > 0
        LOOP
            lot := spendable.lot; expire_time := spendable.expire_time; remaining := spendable.remaining;
            RETURN NEXT;
            covered := covered + spendable.remaining;
        END LOOP;
        IF covered >= points THEN
            RETURN;
        END IF;
        FOR spendable IN
            SELECT l.lot, l.expire_time, l.remaining FROM point_lots l
            WHERE l.account_id = account AND l.remaining > 0 AND l.lot IS DISTINCT FROM first_lot
            ORDER BY l.expire_time, l.lot
        LOOP
            lot := spendable.lot; expire_time := spendable.expire_time; remaining := spendable.remaining;
            RETURN NEXT;
            covered := covered + spendable.remaining;
            EXIT WHEN covered >= points;
        END LOOP;
    END
    $$
    """

# The API's earnings, goodwill and redemptions, whole, in one statement (so one round trip, and no
# wait on the service while the account is locked). The service passes what it decided without the
# database: the checked posting, its lifetime changes, the program's terms, the entry's and the tier
# event's messages without the fields only the database knows (appended here), the event envelope.
# Outcomes: POSTED; REPLAYED (the stored answer of the request id, compared by the service);
# PROGRAM_CHANGED (nothing written: the service reads the program in force and calls again);
# NO_ACCOUNT, ACCOUNT_CLOSED and INSUFFICIENT_POINTS (nothing written, the request id released).
_POST_POINTS = """
    CREATE FUNCTION post_points(
        caller_subject text, request_key text, request_method text, request_fingerprint bytea,
        expected_program_version bigint,
        account_key uuid, entry_kind text, entry_points bigint, earned_change bigint, redeemed_change bigint,
        entry_reason text, entry_source_reference text, entry_actor text, posted_at timestamptz,
        lot_expire_at timestamptz, lot_qualifies boolean,
        window_start timestamptz, tier_ids text[], tier_thresholds bigint[], tier_review_at timestamptz,
        entry_name_prefix text, entry_without_name bytea, tier_changed_without_tiers bytea,
        event_aggregate_type text, event_aggregate_id text, entry_posted_type text, tier_changed_type text,
        event_trace_id text
    )
    RETURNS TABLE (
        outcome text, entry_number bigint, entry_balance bigint, available_points bigint,
        program_version bigint, stored_method text, stored_fingerprint bytea, stored_response bytea
    )
    LANGUAGE plpgsql AS $$
    DECLARE
        held accounts%ROWTYPE;
        window_points bigint;
        held_rank integer;
        qualified_rank integer;
        new_tier text;
        new_review_time timestamptz;
        answer bytea;
        needed bigint;
        take bigint;
        drawn record;
    BEGIN
        SELECT coalesce(max(v.version), 0) INTO program_version FROM program_versions v;
        IF program_version <> expected_program_version THEN
            outcome := 'PROGRAM_CHANGED';
            RETURN NEXT;
            RETURN;
        END IF;

        -- A concurrent repeat of the request id waits here until the first commits (then replays
        -- its answer) or gives the id up (then does the work itself).
        LOOP
            INSERT INTO idempotency_keys (caller, request_id, method, fingerprint)
            VALUES (caller_subject, request_key, request_method, request_fingerprint)
            ON CONFLICT DO NOTHING;
            EXIT WHEN FOUND;
            SELECT k.method, k.fingerprint, k.response INTO stored_method, stored_fingerprint, stored_response
            FROM idempotency_keys k WHERE k.caller = caller_subject AND k.request_id = request_key;
            IF FOUND THEN
                outcome := 'REPLAYED';
                RETURN NEXT;
                RETURN;
            END IF;
            -- Pruned past its retention between the two statements: the id is new again.
        END LOOP;

        SELECT * INTO held FROM accounts a WHERE a.id = account_key FOR UPDATE;
        IF NOT FOUND THEN
            outcome := 'NO_ACCOUNT';
        ELSIF held.state <> 'ACTIVE' THEN
            outcome := 'ACCOUNT_CLOSED';
        ELSIF held.balance + entry_points < 0 THEN
            outcome := 'INSUFFICIENT_POINTS';
            available_points := held.balance;
        END IF;
        IF outcome IS NOT NULL THEN
            DELETE FROM idempotency_keys k WHERE k.caller = caller_subject AND k.request_id = request_key;
            RETURN NEXT;
            RETURN;
        END IF;

        entry_number := held.entry_count + 1;
        entry_balance := held.balance + entry_points;
        new_tier := held.tier;
        new_review_time := held.tier_review_time;
        window_points := held.qualifying_points;
        IF lot_qualifies THEN
            window_points := held.qualifying_points
                - qualifying_points_earned(account_key, held.qualifying_since, window_start)
                + qualifying_points_earned(account_key, window_start, held.qualifying_since)
                + entry_points;
            -- Raised at once when the points earned reach a higher tier; lowering waits for the review.
            -- An unknown tier (removed from the program) ranks lowest.
            held_rank := coalesce(array_position(tier_ids, held.tier), 1);
            SELECT max(t.rank) INTO qualified_rank
            FROM unnest(tier_thresholds) WITH ORDINALITY AS t(threshold, rank) WHERE t.threshold <= window_points;
            IF qualified_rank > held_rank THEN
                new_tier := tier_ids[qualified_rank];
                new_review_time := tier_review_at;
            END IF;
        END IF;

        UPDATE accounts a SET
            balance = entry_balance,
            lifetime_earned = a.lifetime_earned + earned_change,
            lifetime_redeemed = a.lifetime_redeemed + redeemed_change,
            entry_count = entry_number,
            update_time = posted_at,
            qualifying_points = window_points,
            qualifying_since = CASE WHEN lot_qualifies THEN window_start ELSE a.qualifying_since END,
            tier = new_tier,
            tier_review_time = new_review_time
        WHERE a.id = account_key;
        INSERT INTO ledger_entries (account_id, entry, kind, points, balance_after, reason, source_reference,
                                    request_id, actor, create_time, expire_time)
        VALUES (account_key, entry_number, entry_kind, entry_points, entry_balance, entry_reason,
                entry_source_reference, request_key, entry_actor, posted_at, lot_expire_at);

        IF lot_expire_at IS NOT NULL THEN
            -- New points open a lot of their own; earned ones count towards tiers.
            INSERT INTO point_lots (account_id, lot, earn_time, expire_time, points, remaining, qualifying)
            VALUES (account_key, entry_number, posted_at, lot_expire_at, entry_points, entry_points,
                    CASE WHEN lot_qualifies THEN entry_points ELSE 0 END);
        ELSIF entry_points < 0 THEN
            needed := -entry_points;
            FOR drawn IN SELECT c.lot, c.remaining FROM lots_covering(account_key, needed, NULL) c LOOP
                take := least(drawn.remaining, needed);
                UPDATE point_lots l SET remaining = l.remaining - take
                WHERE l.account_id = account_key AND l.lot = drawn.lot;
                INSERT INTO lot_draws (account_id, entry, lot, points)
                VALUES (account_key, entry_number, drawn.lot, take);
                needed := needed - take;
            END LOOP;
            IF needed > 0 THEN
                -- The balance covered the debit, so the lots must too; anything else is a broken ledger.
                RAISE EXCEPTION 'the lots of account % hold % points too few', account_key, needed;
            END IF;
        END IF;

        answer := entry_without_name || protobuf_text_field(1, entry_name_prefix || entry_number)
                  || protobuf_uint_field(4, entry_balance);
        INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, trace_id, create_time)
        VALUES (gen_random_uuid(), event_aggregate_type, event_aggregate_id, entry_posted_type,
                protobuf_message_field(1, answer), event_trace_id, posted_at);
        IF new_tier IS DISTINCT FROM held.tier THEN
            INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, trace_id, create_time)
            VALUES (gen_random_uuid(), event_aggregate_type, event_aggregate_id, tier_changed_type,
                    tier_changed_without_tiers || protobuf_text_field(2, tier_ids[held_rank])
                    || protobuf_text_field(3, new_tier) || protobuf_uint_field(4, window_points),
                    event_trace_id, posted_at);
        END IF;
        UPDATE idempotency_keys k SET response = answer
        WHERE k.caller = caller_subject AND k.request_id = request_key;
        outcome := 'POSTED';
        RETURN NEXT;
    END
    $$
    """


def upgrade() -> None:
    for statement in (*_PROTOBUF_ENCODING, *_QUALIFYING_WINDOW, _LOTS_COVERING, _POST_POINTS):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP FUNCTION post_points")
    op.execute("DROP FUNCTION lots_covering")
    op.execute("DROP FUNCTION account_qualifying_points")
    op.execute("DROP FUNCTION qualifying_points_earned")
    op.execute("ALTER TABLE accounts DROP COLUMN qualifying_points, DROP COLUMN qualifying_since")
    op.execute("DROP FUNCTION protobuf_message_field, protobuf_uint_field, protobuf_text_field, protobuf_varint")
