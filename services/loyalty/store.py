"""Accounts and ledger entries of the loyalty database; every query is keyed by the account.

A posting runs inside the caller's transaction after `lock_account`: the balance update is guarded
by the entry count read under the lock, and the database's CHECK keeps the balance from going below
zero even if the rules above were wrong.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import MetaData, Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import rows_affected
from chassis.errors import Aborted
from chassis.idempotency import idempotency_table
from chassis.pagination import PageRequest
from services.loyalty.ledger import Account, AccountState, Entry, EntryKind, Lot

metadata = MetaData()
idempotency_keys = idempotency_table(metadata)


async def open_account(session: AsyncSession, account_id: uuid.UUID, *, tier: str, actor: str, now: datetime) -> bool:
    """Creates an empty account in `tier`; False when it exists already."""
    result = await session.execute(
        text(
            "INSERT INTO accounts (id, tier, create_time, creator, update_time) "
            "VALUES (:id, :tier, :now, :actor, :now) ON CONFLICT (id) DO NOTHING"
        ),
        {"id": account_id, "tier": tier, "now": now, "actor": actor},
    )
    return rows_affected(result) > 0


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """An account as it stands."""
    row = (await session.execute(text("SELECT * FROM accounts WHERE id = :id"), {"id": account_id})).first()
    return _account(row) if row else None


async def lock_account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """An account, locked until the transaction ends: postings to one account queue up behind each other."""
    row = (await session.execute(text("SELECT * FROM accounts WHERE id = :id FOR UPDATE"), {"id": account_id})).first()
    return _account(row) if row else None


async def record_posting(
    session: AsyncSession, before: Account, after: Account, entry: Entry, request_id: str, source_key: str = ""
) -> None:
    """Writes the account's new state and the entry that explains it, in the caller's transaction."""
    result = await session.execute(
        text(
            "UPDATE accounts SET balance = balance + :points, reserved = reserved + :reserved_change, "
            "lifetime_earned = :earned, lifetime_redeemed = :redeemed, lifetime_expired = :expired, "
            "entry_count = entry_count + 1, update_time = :now "
            "WHERE id = :id AND entry_count = :expected_count RETURNING balance"
        ),
        {
            "points": entry.points,
            "reserved_change": entry.reserved_change,
            "earned": after.lifetime_earned,
            "redeemed": after.lifetime_redeemed,
            "expired": after.lifetime_expired,
            "now": entry.create_time,
            "id": before.id,
            "expected_count": before.entry_count,
        },
    )
    balance = result.scalar()
    if balance != entry.balance_after:
        # Only possible if the account changed without its lock being held: refuse rather than guess.
        raise Aborted("ACCOUNT_CHANGED", "the account changed concurrently; retry the request")
    await session.execute(
        text(
            "INSERT INTO ledger_entries (account_id, entry, kind, points, balance_after, reason, source_reference, "
            "request_id, reversed_entry, actor, create_time, reserved_change, rule, source_key, source_event, "
            "reservation, expire_time) VALUES (:account_id, :entry, :kind, :points, :balance_after, :reason, "
            ":source_reference, :request_id, :reversed_entry, :actor, :create_time, :reserved_change, :rule, "
            ":source_key, :source_event, :reservation, :expire_time)"
        ),
        {
            "account_id": entry.account_id,
            "entry": entry.number,
            "kind": entry.kind.value,
            "points": entry.points,
            "balance_after": entry.balance_after,
            "reason": entry.reason,
            "source_reference": entry.source_reference,
            "request_id": request_id,
            "reversed_entry": entry.reversed_entry,
            "actor": entry.actor,
            "create_time": entry.create_time,
            "reserved_change": entry.reserved_change,
            "rule": entry.rule,
            "source_key": source_key,
            "source_event": entry.source_event,
            "reservation": entry.reservation,
            "expire_time": entry.expire_time,
        },
    )


async def rule_credited(session: AsyncSession, account_id: uuid.UUID, rule: str, source_key: str) -> bool:
    """Whether the rule credited this fact to the account before."""
    row = await session.execute(
        text("SELECT 1 FROM ledger_entries WHERE account_id = :a AND rule = :rule AND source_key = :key"),
        {"a": account_id, "rule": rule, "key": source_key},
    )
    return row.first() is not None


async def rule_points_for_reference(
    session: AsyncSession, account_id: uuid.UUID, rule: str, source_reference: str
) -> int:
    """Points a rule credited for one business fact over several events (a line's month), net of reversals."""
    value = await session.scalar(
        text(
            "SELECT coalesce(sum(e.points), 0) FROM ledger_entries e WHERE e.account_id = :a AND e.rule = :rule "
            "AND e.source_reference = :ref AND NOT EXISTS (SELECT 1 FROM ledger_entries r "
            "WHERE r.account_id = e.account_id AND r.reversed_entry = e.entry)"
        ),
        {"a": account_id, "rule": rule, "ref": source_reference},
    )
    return int(value or 0)


async def insert_lot(session: AsyncSession, entry: Entry, *, qualifying: bool) -> None:
    """Opens the lot of a credit of new points; its points count towards tiers when `qualifying`
    (and join the account's running total of qualifying points)."""
    await session.execute(
        text(
            "WITH lot AS (INSERT INTO point_lots (account_id, lot, earn_time, expire_time, points, remaining, "
            "qualifying) VALUES (:a, :lot, :earn, :expire, :points, :points, :qualifying) "
            "RETURNING account_id, earn_time, qualifying) "
            "UPDATE accounts SET qualifying_points = qualifying_points + lot.qualifying FROM lot "
            "WHERE accounts.id = lot.account_id AND lot.qualifying > 0 AND lot.earn_time > accounts.qualifying_since"
        ),
        {
            "a": entry.account_id,
            "lot": entry.number,
            "earn": entry.create_time,
            "expire": entry.expire_time,
            "points": entry.points,
            "qualifying": entry.points if qualifying else 0,
        },
    )


async def spendable_lots(
    session: AsyncSession, account_id: uuid.UUID, points: int, *, first: int | None = None
) -> list[Lot]:
    """The lots a debit of `points` would draw on: lot `first` (when given) and then the lots that
    lapse soonest, only as many as cover the points (read through an index, however many there are)."""
    rows = await session.execute(
        text("SELECT lot, expire_time, remaining FROM lots_covering(:a, :points, :first)"),
        {"a": account_id, "points": points, "first": first},
    )
    return [Lot(number=row.lot, expire_time=row.expire_time, remaining=row.remaining) for row in rows]


_DRAWS = "unnest(CAST(:lots AS bigint[]), CAST(:points AS bigint[])) AS d(lot, points)"


async def draw_lots(session: AsyncSession, account_id: uuid.UUID, entry: int, draws: list[tuple[int, int]]) -> None:
    """Takes points out of lots for a debit and remembers where they came from."""
    if not draws:
        return
    params = {"a": account_id, "entry": entry, "lots": [lot for lot, _ in draws], "points": [p for _, p in draws]}
    await session.execute(
        text(
            "UPDATE point_lots l SET remaining = l.remaining - d.points "
            f"FROM {_DRAWS} WHERE l.account_id = :a AND l.lot = d.lot"
        ),
        params,
    )
    await session.execute(
        text(
            f"INSERT INTO lot_draws (account_id, entry, lot, points) SELECT :a, :entry, d.lot, d.points FROM {_DRAWS}"
        ),
        params,
    )


async def restore_draws(session: AsyncSession, account_id: uuid.UUID, debit_entry: int) -> None:
    """Puts the points a debit took back into the lots they came from (they keep their lapse dates)."""
    await session.execute(
        text(
            "UPDATE point_lots l SET remaining = l.remaining + d.points FROM lot_draws d "
            "WHERE d.account_id = :a AND d.entry = :entry AND l.account_id = d.account_id AND l.lot = d.lot"
        ),
        {"a": account_id, "entry": debit_entry},
    )


async def stop_qualifying(session: AsyncSession, account_id: uuid.UUID, lot: int) -> None:
    """A reversed credit no longer counts towards tiers (nor in the account's running total)."""
    await session.execute(
        text(
            "WITH before AS (SELECT lot, earn_time, qualifying FROM point_lots WHERE account_id = :a AND lot = :lot "
            "FOR UPDATE), "
            "stopped AS (UPDATE point_lots l SET qualifying = 0 FROM before "
            "WHERE l.account_id = :a AND l.lot = before.lot RETURNING before.earn_time, before.qualifying) "
            "UPDATE accounts SET qualifying_points = qualifying_points - stopped.qualifying FROM stopped "
            "WHERE accounts.id = :a AND stopped.qualifying > 0 AND stopped.earn_time > accounts.qualifying_since"
        ),
        {"a": account_id, "lot": lot},
    )


async def qualifying_points(session: AsyncSession, account_id: uuid.UUID, since: datetime, now: datetime) -> int:
    """Points earned since `since` (the start of a window ending `now`) that count towards tiers, read
    from the account's running total or from the window's lots, whichever reads less."""
    value = await session.scalar(
        text("SELECT account_qualifying_points(:a, :since, :now)"), {"a": account_id, "since": since, "now": now}
    )
    return int(value or 0)


async def move_qualifying_window(session: AsyncSession, account_id: uuid.UUID, since: datetime, now: datetime) -> int:
    """Moves the locked account's qualification window to start at `since` (the start of a window ending
    `now`) and returns the points earned since then that count towards tiers."""
    value = await session.scalar(
        text(
            "UPDATE accounts SET qualifying_points = account_qualifying_points(id, :since, :now), "
            "qualifying_since = :since WHERE id = :a RETURNING qualifying_points"
        ),
        {"a": account_id, "since": since, "now": now},
    )
    return int(value or 0)


async def lapsed_lots(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> list[Lot]:
    """The account's lots past their lapse time that still hold points."""
    rows = await session.execute(
        text(
            "SELECT lot, expire_time, remaining FROM point_lots "
            "WHERE account_id = :a AND spendable AND expire_time <= :now ORDER BY expire_time, lot"
        ),
        {"a": account_id, "now": now},
    )
    return [Lot(number=row.lot, expire_time=row.expire_time, remaining=row.remaining) for row in rows]


async def accounts_with_lapsed_lots(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Accounts holding points past their lapse time."""
    rows = await session.execute(
        text("SELECT DISTINCT account_id FROM point_lots WHERE spendable AND expire_time <= :now LIMIT :limit"),
        {"now": now, "limit": limit},
    )
    return [row.account_id for row in rows]


async def expiring_points(session: AsyncSession, account_id: uuid.UUID, until: datetime) -> list[tuple[datetime, int]]:
    """Spendable points lapsing before `until`, summed per UTC day, earliest first."""
    rows = await session.execute(
        text(
            "SELECT date_trunc('day', expire_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day, "
            "sum(remaining) AS points FROM point_lots WHERE account_id = :a AND spendable "
            "AND expire_time < :until GROUP BY 1 ORDER BY 1"
        ),
        {"a": account_id, "until": until},
    )
    return [(row.day, int(row.points)) for row in rows]


async def set_tier(session: AsyncSession, account_id: uuid.UUID, tier: str, review_time: datetime | None) -> None:
    """Records the account's tier and when it is next reviewed."""
    await session.execute(
        text("UPDATE accounts SET tier = :tier, tier_review_time = :review WHERE id = :a"),
        {"a": account_id, "tier": tier, "review": review_time},
    )


async def accounts_due_for_review(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """Open accounts whose tier review time has come."""
    rows = await session.execute(
        text(
            "SELECT id FROM accounts WHERE state = 'ACTIVE' AND tier_review_time <= :now "
            "ORDER BY tier_review_time LIMIT :limit"
        ),
        {"now": now, "limit": limit},
    )
    return [row.id for row in rows]


async def accounts_due_for_anniversary(session: AsyncSession, today: date, limit: int) -> list[uuid.UUID]:
    """Open accounts whose next tenure anniversary has come."""
    rows = await session.execute(
        text(
            "SELECT id FROM accounts WHERE state = 'ACTIVE' AND next_anniversary <= :today "
            "ORDER BY next_anniversary LIMIT :limit"
        ),
        {"today": today, "limit": limit},
    )
    return [row.id for row in rows]


@dataclass(frozen=True)
class CustomerProfile:
    """What the account keeps of its customer for earning conditions and tenure."""

    segments: frozenset[str]
    regions: frozenset[str]
    tenure_start: date | None
    next_anniversary: date | None


async def customer_profile(session: AsyncSession, account_id: uuid.UUID) -> CustomerProfile:
    """The customer facts kept on the account (empty when there is no account)."""
    row = (
        await session.execute(
            text("SELECT segments, regions, tenure_start, next_anniversary FROM accounts WHERE id = :a"),
            {"a": account_id},
        )
    ).first()
    if row is None:
        return CustomerProfile(frozenset(), frozenset(), None, None)
    return CustomerProfile(frozenset(row.segments), frozenset(row.regions), row.tenure_start, row.next_anniversary)


async def update_customer_profile(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    add_segments: tuple[str, ...] = (),
    remove_segments: tuple[str, ...] = (),
    add_regions: tuple[str, ...] = (),
    tenure_start: date | None = None,
    next_anniversary: date | None = None,
) -> None:
    """Adds and removes segments and regions, and moves the tenure start earlier when given."""
    await session.execute(
        text(
            "UPDATE accounts SET "
            "segments = ARRAY(SELECT DISTINCT s FROM unnest(segments || CAST(:add_segments AS text[])) AS s "
            "  WHERE s <> ALL (CAST(:remove_segments AS text[])) ORDER BY s), "
            "regions = ARRAY(SELECT DISTINCT r FROM unnest(regions || CAST(:add_regions AS text[])) AS r ORDER BY r), "
            "tenure_start = CASE WHEN CAST(:tenure_start AS date) IS NOT NULL "
            "  AND (tenure_start IS NULL OR CAST(:tenure_start AS date) < tenure_start) "
            "  THEN CAST(:tenure_start AS date) ELSE tenure_start END, "
            "next_anniversary = coalesce(CAST(:next_anniversary AS date), next_anniversary) "
            "WHERE id = :a"
        ),
        {
            "a": account_id,
            "add_segments": list(add_segments),
            "remove_segments": list(remove_segments),
            "add_regions": list(add_regions),
            "tenure_start": tenure_start,
            "next_anniversary": next_anniversary,
        },
    )


async def close_account(session: AsyncSession, account_id: uuid.UUID) -> bool:
    """Closes the account and forgets what it knew of the customer; its numbers stay. False when
    there is no open account."""
    result = await session.execute(
        text(
            "UPDATE accounts SET state = 'CLOSED', segments = '{}', regions = '{}', tenure_start = NULL, "
            "next_anniversary = NULL, tier_review_time = NULL WHERE id = :a AND state = 'ACTIVE'"
        ),
        {"a": account_id},
    )
    return rows_affected(result) > 0


async def erase_entry_words(session: AsyncSession, account_id: uuid.UUID) -> None:
    """Blanks the words of every entry (reasons may name the customer) and drops the stored answers
    of the requests that wrote them (the keys stay: a retry is refused as a reused request id rather
    than done again); the numbers stay."""
    await session.execute(
        text(
            "UPDATE idempotency_keys SET response = NULL, fingerprint = '' WHERE request_id IN "
            "(SELECT request_id FROM ledger_entries WHERE account_id = :a AND request_id <> '')"
        ),
        {"a": account_id},
    )
    await session.execute(
        text(
            "UPDATE ledger_entries SET reason = 'erased', source_reference = '', request_id = '' "
            "WHERE account_id = :a AND (reason <> 'erased' OR source_reference <> '' OR request_id <> '')"
        ),
        {"a": account_id},
    )


async def get_entry(session: AsyncSession, account_id: uuid.UUID, number: int) -> Entry | None:
    """One entry of an account."""
    row = (
        await session.execute(
            text("SELECT * FROM ledger_entries WHERE account_id = :a AND entry = :n"), {"a": account_id, "n": number}
        )
    ).first()
    return _entry(row) if row else None


async def is_reversed(session: AsyncSession, account_id: uuid.UUID, number: int) -> bool:
    """Whether a reversal of the entry exists."""
    row = (
        await session.execute(
            text("SELECT 1 FROM ledger_entries WHERE account_id = :a AND reversed_entry = :n"),
            {"a": account_id, "n": number},
        )
    ).first()
    return row is not None


async def list_entries(session: AsyncSession, account_id: uuid.UUID, page: PageRequest) -> list[Entry]:
    """A page of an account's entries, newest first, fetched with the row that tells whether more follow."""
    after = page.after_int()
    rows = await session.execute(
        text("SELECT * FROM ledger_entries WHERE account_id = :a AND entry < :before ORDER BY entry DESC LIMIT :limit"),
        {"a": account_id, "before": after if after is not None else 2**63 - 1, "limit": page.fetch_size},
    )
    return [_entry(row) for row in rows]


def _account(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        balance=row.balance,
        lifetime_earned=row.lifetime_earned,
        lifetime_redeemed=row.lifetime_redeemed,
        entry_count=row.entry_count,
        create_time=row.create_time,
        update_time=row.update_time,
        reserved=row.reserved,
        lifetime_expired=row.lifetime_expired,
        tier=row.tier,
        tier_review_time=row.tier_review_time,
        state=AccountState(row.state),
    )


def _entry(row: Row[Any]) -> Entry:
    return Entry(
        account_id=row.account_id,
        number=row.entry,
        kind=EntryKind(row.kind),
        points=row.points,
        balance_after=row.balance_after,
        reason=row.reason,
        source_reference=row.source_reference,
        reversed_entry=row.reversed_entry,
        actor=row.actor,
        create_time=row.create_time,
        reserved_change=row.reserved_change,
        rule=row.rule,
        source_event=row.source_event,
        reservation=row.reservation,
        expire_time=row.expire_time,
    )


@dataclass(frozen=True)
class Flows:
    """Points that moved in a period, by what moved them."""

    earned: int
    redeemed: int
    expired: int
    redeeming_accounts: int


async def flows(session: AsyncSession, start: datetime, end: datetime) -> Flows:
    """Earned (earn, goodwill), redeemed (redeem, capture) and expired points in [start, end), each
    net of the reversals written in the period."""
    row = (
        await session.execute(
            text(
                "SELECT "
                "coalesce(sum(e.points) FILTER (WHERE coalesce(t.kind, e.kind) IN ('EARN', 'GOODWILL')), 0) AS earned, "
                "coalesce(sum(-e.points - e.reserved_change) "
                "  FILTER (WHERE coalesce(t.kind, e.kind) IN ('REDEEM', 'CAPTURE')), 0) AS redeemed, "
                "coalesce(sum(-e.points) FILTER (WHERE e.kind = 'EXPIRE'), 0) AS expired, "
                "count(DISTINCT e.account_id) FILTER (WHERE e.kind IN ('REDEEM', 'CAPTURE')) AS redeeming "
                "FROM ledger_entries e LEFT JOIN ledger_entries t "
                "  ON e.kind = 'REVERSE' AND t.account_id = e.account_id AND t.entry = e.reversed_entry "
                "WHERE e.create_time >= :start AND e.create_time < :end"
            ),
            {"start": start, "end": end},
        )
    ).one()
    return Flows(int(row.earned), int(row.redeemed), int(row.expired), int(row.redeeming))


async def holdings(session: AsyncSession) -> tuple[int, dict[str, int], int]:
    """Points held now (available and reserved) by every account, open accounts per tier, and the
    number of open accounts: sums of the counters the accounts' trigger keeps (migration 0006), a
    fixed number of rows however many accounts there are."""
    outstanding = await session.scalar(text("SELECT coalesce(sum(points), 0) FROM points_held"))
    rows = await session.execute(
        text("SELECT tier, sum(accounts) AS accounts FROM tier_members GROUP BY tier HAVING sum(accounts) > 0")
    )
    per_tier = {row.tier: int(row.accounts) for row in rows}
    return int(outstanding or 0), per_tier, sum(per_tier.values())
