"""Lots are drawn one index probe at a time, soonest lapsing first and after the one drawn before
(`ORDER BY ... LIMIT 1` from a key), so that no statistics, however stale (an account that earned
thousands of lots since the table was last analyzed), can turn a draw into a read and sort of all
the account's lots.

Revision ID: 0008
Revises: 0007
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_LOTS_COVERING = """
    CREATE OR REPLACE FUNCTION lots_covering(account uuid, points bigint, first_lot bigint)
    RETURNS TABLE (lot bigint, expire_time timestamptz, remaining bigint)
    LANGUAGE plpgsql STABLE AS $$
    DECLARE
        spendable_lot record;
        covered bigint := 0;
        after_expire_time timestamptz := '-infinity';
        after_lot bigint := 0;
    BEGIN
        IF points <= 0 THEN
            RETURN;
        END IF;
        SELECT l.lot, l.expire_time, l.remaining INTO spendable_lot FROM point_lots l
        WHERE l.account_id = account AND l.lot = first_lot AND l.spendable;
        IF FOUND THEN
            lot := spendable_lot.lot; expire_time := spendable_lot.expire_time; remaining := spendable_lot.remaining;
            RETURN NEXT;
            covered := covered + spendable_lot.remaining;
        END IF;
        WHILE covered < points LOOP
            SELECT l.lot, l.expire_time, l.remaining INTO spendable_lot FROM point_lots l
            WHERE l.account_id = account AND l.spendable AND (l.expire_time, l.lot) > (after_expire_time, after_lot)
            ORDER BY l.expire_time, l.lot LIMIT 1;
            EXIT WHEN NOT FOUND;
            after_expire_time := spendable_lot.expire_time;
            after_lot := spendable_lot.lot;
            CONTINUE WHEN spendable_lot.lot = first_lot;
            lot := spendable_lot.lot; expire_time := spendable_lot.expire_time; remaining := spendable_lot.remaining;
            RETURN NEXT;
            covered := covered + spendable_lot.remaining;
        END LOOP;
    END
    $$
    """

# Arguments, answers and outcomes as in 0004 (`services/loyalty/posting_statement.py` calls it).
_POST_POINTS = """
    CREATE OR REPLACE FUNCTION post_points(
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
        held record;
        window_points bigint;
        held_rank integer := 1;
        qualified_rank integer := 1;
        new_tier text;
        new_review_time timestamptz;
        answer bytea;
        needed bigint;
        take bigint;
        drawn record;
        drawn_expire_time timestamptz := '-infinity';
        drawn_lot bigint := 0;
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

        SELECT a.balance, a.entry_count, a.state, a.tier, a.tier_review_time, a.qualifying_points,
               a.qualifying_since
        INTO held FROM accounts a WHERE a.id = account_key FOR UPDATE;
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
            -- The window's start moved on (or back, after a longer window or another clock): only the
            -- lots it passed leave (or join) the running total; after a pause longer than a window
            -- the window's own lots are fewer to read. (The sums of account_qualifying_points,
            -- written out so that the function keeps their plans.)
            IF held.qualifying_since NOT BETWEEN window_start - (posted_at - window_start) AND posted_at THEN
                SELECT coalesce(sum(l.qualifying), 0) INTO window_points FROM point_lots l
                WHERE l.account_id = account_key AND l.qualifying > 0 AND l.earn_time > window_start;
            ELSIF window_start > held.qualifying_since THEN
                SELECT window_points - coalesce(sum(l.qualifying), 0) INTO window_points FROM point_lots l
                WHERE l.account_id = account_key AND l.qualifying > 0
                  AND l.earn_time > held.qualifying_since AND l.earn_time <= window_start;
            ELSIF window_start < held.qualifying_since THEN
                SELECT window_points + coalesce(sum(l.qualifying), 0) INTO window_points FROM point_lots l
                WHERE l.account_id = account_key AND l.qualifying > 0
                  AND l.earn_time > window_start AND l.earn_time <= held.qualifying_since;
            END IF;
            window_points := window_points + entry_points;
            -- Raised at once when the points earned reach a higher tier; lowering waits for the review.
            -- An unknown tier (removed from the program) ranks lowest.
            held_rank := coalesce(array_position(tier_ids, held.tier), 1);
            FOR rank IN REVERSE cardinality(tier_thresholds)..1 LOOP
                IF tier_thresholds[rank] <= window_points THEN
                    qualified_rank := rank;
                    EXIT;
                END IF;
            END LOOP;
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
                                    request_id, reversed_entry, actor, create_time, reserved_change, rule,
                                    source_key, source_event, reservation, expire_time)
        VALUES (account_key, entry_number, entry_kind, entry_points, entry_balance, entry_reason,
                entry_source_reference, request_key, NULL, entry_actor, posted_at, 0, '', '', NULL, NULL,
                lot_expire_at);

        IF lot_expire_at IS NOT NULL THEN
            -- New points open a lot of their own; earned ones count towards tiers.
            INSERT INTO point_lots (account_id, lot, earn_time, expire_time, points, remaining, qualifying)
            VALUES (account_key, entry_number, posted_at, lot_expire_at, entry_points, entry_points,
                    CASE WHEN lot_qualifies THEN entry_points ELSE 0 END);
        ELSIF entry_points < 0 THEN
            -- Spending takes the lots that lapse soonest (the order of lots_covering), one index probe
            -- for each lot it draws on, whatever the planner believes of the account's number of lots.
            needed := -entry_points;
            LOOP
                SELECT l.lot, l.expire_time, l.remaining INTO drawn FROM point_lots l
                WHERE l.account_id = account_key AND l.spendable
                  AND (l.expire_time, l.lot) > (drawn_expire_time, drawn_lot)
                ORDER BY l.expire_time, l.lot LIMIT 1;
                IF NOT FOUND THEN
                    -- The balance covered the debit, so the lots must too; anything else is a broken ledger.
                    RAISE EXCEPTION 'the lots of account % hold % points too few', account_key, needed;
                END IF;
                take := least(drawn.remaining, needed);
                UPDATE point_lots l SET remaining = l.remaining - take
                WHERE l.account_id = account_key AND l.lot = drawn.lot;
                INSERT INTO lot_draws (account_id, entry, lot, points)
                VALUES (account_key, entry_number, drawn.lot, take);
                needed := needed - take;
                EXIT WHEN needed = 0;
                drawn_expire_time := drawn.expire_time;
                drawn_lot := drawn.lot;
            END LOOP;
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
    op.execute(_LOTS_COVERING)
    op.execute(_POST_POINTS)


def downgrade() -> None:
    # The earlier functions as their revisions wrote them, rather than copies of them here.
    op.execute(_revision("0005_lighter_posting_function.py")._LOTS_COVERING)
    op.execute(_revision("0007_qualifying_points_within_a_window.py")._POST_POINTS)


def _revision(file_name: str) -> ModuleType:
    """An earlier revision's module (their file names are no module names)."""
    spec = importlib.util.spec_from_file_location(file_name.removesuffix(".py"), Path(__file__).with_name(file_name))
    if spec is None or spec.loader is None:
        raise RuntimeError(f"revision {file_name} is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
