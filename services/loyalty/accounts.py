"""Use cases of the loyalty ledger over a database session: open accounts, post and reverse points,
keep the point lots and the tier in step, read balances and entries. Every change and its outbox
events share the caller's transaction; every posting holds the account's row lock.
"""

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.errors import not_found
from chassis.outbox import NewEvent, append_event, append_events
from chassis.pagination import PageRequest, next_page_token
from crm.loyalty.v1 import events_pb2
from services.loyalty import catalog_store, ledger, store
from services.loyalty.ledger import Account, Entry, EntryKind, Lot, Posting
from services.loyalty.mapping import account_name, account_to_proto, entry_name, entry_to_proto, timestamp
from services.loyalty.program_rules import Program
from services.loyalty.program_versions import current_program

AGGREGATE_TYPE = "loyalty_account"


@dataclass(frozen=True)
class EntryPage:
    """A page of entries and the token of the next one."""

    items: list[Entry]
    next_page_token: str


@dataclass(frozen=True)
class BalanceView:
    """Points available, reserved and lapsing soon."""

    available: int
    reserved: int
    expiring: list[tuple[datetime, int]]


@dataclass(frozen=True)
class TierView:
    """Where an account stands in the tiers."""

    tier: str
    qualifying_points: int
    window_start: datetime
    next_tier: str
    points_to_next_tier: int
    review_time: datetime | None
    qualified_tier: str


@dataclass
class Posted:
    """An entry written, with the account after it and the events to announce."""

    account: Account
    entry: Entry
    events: list[Message] = field(default_factory=list)


async def open_account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """Opens the account in the lowest tier, or returns it unchanged when it is open already."""
    now = datetime.now(UTC)
    program = await current_program(session)
    tier = program.lowest_tier.id
    if await store.open_account(session, account_id, tier=tier, actor=current_caller().subject, now=now):
        account = Account(id=account_id, create_time=now, update_time=now, tier=tier)
        await append_event(
            session,
            aggregate_type=AGGREGATE_TYPE,
            aggregate_id=account_name(account_id),
            payload=events_pb2.AccountOpened(account=account_to_proto(account)),
            now=now,
        )
        return account
    return await get_account(session, account_id)


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The account; NOT_FOUND when the customer has none."""
    account = await store.get_account(session, account_id)
    if account is None:
        raise not_found("account", account_name(account_id))
    return account


async def lock(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The account, locked until the transaction ends; NOT_FOUND when there is none."""
    account = await store.lock_account(session, account_id)
    if account is None:
        raise not_found("account", account_name(account_id))
    return account


async def post_points(session: AsyncSession, account_id: uuid.UUID, posting: Posting, request_id: str) -> Entry:
    """Applies a checked posting to the locked account and records its entry."""
    account = await lock(session, account_id)
    posted = await record(session, account, posting, request_id=request_id)
    return posted.entry


async def reverse_entry(
    session: AsyncSession, account_id: uuid.UUID, number: int, reason: str, request_id: str
) -> Entry:
    """Writes the exact opposite of what one entry did, at most once: a credit is taken back (from
    its own lot first), spent points go back to the lots they came from."""
    account = await lock(session, account_id)
    target = await store.get_entry(session, account_id, number)
    if target is None:
        raise not_found("entry", entry_name(account_id, number))
    already_reversed = await store.is_reversed(session, account_id, number)
    posting = ledger.reversal(target, already_reversed=already_reversed, reason=reason)
    restore_from = draw_first = None
    if target.kind in ledger.NEW_POINT_KINDS:
        draw_first = target.number
        await store.stop_qualifying(session, account_id, target.number)
    elif target.kind is EntryKind.REDEEM:
        restore_from = target.number
    elif target.kind is EntryKind.CAPTURE and target.reservation is not None:
        reservation = await catalog_store.get_reservation(session, account_id, target.reservation)
        restore_from = reservation.reserve_entry if reservation else None
    posted = await record(
        session, account, posting, request_id=request_id, restore_from=restore_from, draw_first=draw_first
    )
    return posted.entry


async def record(
    session: AsyncSession,
    account: Account,
    posting: Posting,
    *,
    request_id: str = "",
    restore_from: int | None = None,
    draw_first: int | None = None,
    lapsed: list[Lot] | None = None,
    program: Program | None = None,
    now: datetime | None = None,
) -> Posted:
    """Writes a posting to a locked account with its lots, tier and events.

    New points open a lot that lapses after the program's validity; a debit draws on the lots that
    lapse soonest (or on `lapsed` lots, for an expiry; `draw_first` for a reversed credit); a
    release or a reversed spending puts back what the debit `restore_from` drew."""
    now = now or datetime.now(UTC)
    program = program or await current_program(session)
    updated, entry = ledger.post(
        account, posting, actor=current_caller().subject, now=now, expire_time=now + program.points_validity
    )
    await store.record_posting(session, account, updated, entry, request_id, posting.source_key)
    if posting.kind in ledger.NEW_POINT_KINDS:
        await store.insert_lot(session, entry, qualifying=posting.kind is EntryKind.EARN)
    elif restore_from is not None:
        await store.restore_draws(session, account.id, restore_from)
    elif entry.points < 0:
        needed = -entry.points
        if lapsed is not None:
            draws = [(lot.number, lot.remaining) for lot in lapsed]
        else:
            lots = await store.spendable_lots(session, account.id, needed, first=draw_first)
            draws = ledger.plan_draws(lots, needed, first=draw_first)
        await store.draw_lots(session, account.id, entry.number, draws)
    posted = Posted(updated, entry, [events_pb2.EntryPosted(entry=entry_to_proto(entry))])
    if posting.kind is EntryKind.EARN:
        await _raise_tier(session, posted, program, now)
    await announce(session, account.id, posted.events, now)
    return posted


async def announce(session: AsyncSession, account_id: uuid.UUID, payloads: list[Message], now: datetime) -> None:
    """Appends events about the account to the outbox."""
    aggregate = account_name(account_id)
    await append_events(session, [NewEvent(AGGREGATE_TYPE, aggregate, payload) for payload in payloads], now=now)


async def _raise_tier(session: AsyncSession, posted: Posted, program: Program, now: datetime) -> None:
    """Upgrades at once when the earned points reach a higher tier; lowering waits for the review."""
    account = posted.account
    qualifying = await store.qualifying_points(session, account.id, now - program.qualification_window)
    qualified = program.qualified_tier(qualifying)
    if program.rank(qualified.id) <= program.rank(account.tier):
        return
    review_time = now + program.tier_review_period
    await store.set_tier(session, account.id, qualified.id, review_time)
    posted.account = replace(account, tier=qualified.id, tier_review_time=review_time)
    posted.events.append(
        _tier_changed(account.id, program.tier(account.tier).id, qualified.id, qualifying, review_time)
    )


def _tier_changed(
    account_id: uuid.UUID, previous: str, tier: str, qualifying: int, review_time: datetime | None
) -> events_pb2.TierChanged:
    return events_pb2.TierChanged(
        account=account_name(account_id),
        previous_tier=previous,
        tier=tier,
        qualifying_points=qualifying,
        review_time=timestamp(review_time),
    )


async def review_tier(
    session: AsyncSession, account_id: uuid.UUID, program: Program, now: datetime
) -> tuple[bool, bool]:
    """Sets a locked account's tier to what its qualifying points support, if its review is due.
    Returns (reviewed, lowered); a review already done by a concurrent run is not repeated."""
    account = await store.lock_account(session, account_id)
    if account is None or account.tier_review_time is None or account.tier_review_time > now:
        return False, False
    qualifying = await store.qualifying_points(session, account_id, now - program.qualification_window)
    qualified = program.qualified_tier(qualifying)
    held = program.tier(account.tier)
    review_time = None if qualified.id == program.lowest_tier.id else now + program.tier_review_period
    await store.set_tier(session, account_id, qualified.id, review_time)
    if qualified.id != account.tier:
        await announce(
            session, account_id, [_tier_changed(account_id, held.id, qualified.id, qualifying, review_time)], now
        )
    return True, program.rank(qualified.id) < program.rank(held.id)


async def expire_lapsed_points(session: AsyncSession, account_id: uuid.UUID, program: Program, now: datetime) -> int:
    """Writes one expiry of the locked account's lapsed lots; returns the points expired (0 when a
    concurrent run got there first)."""
    account = await store.lock_account(session, account_id)
    if account is None:
        return 0
    lapsed = await store.lapsed_lots(session, account_id, now)
    points = sum(lot.remaining for lot in lapsed)
    if points == 0:
        return 0
    first = min(lot.expire_time for lot in lapsed)
    posting = ledger.expiry(points, f"points earned before {first:%Y-%m-%d} lapsed unused")
    await record(session, account, posting, lapsed=lapsed, program=program, now=now)
    return points


async def balance(session: AsyncSession, account_id: uuid.UUID, horizon: timedelta) -> BalanceView:
    """Points available, reserved, and lapsing within `horizon` by day."""
    account = await get_account(session, account_id)
    expiring = await store.expiring_points(session, account_id, datetime.now(UTC) + horizon)
    return BalanceView(account.balance, account.reserved, expiring)


async def tier_status(session: AsyncSession, account_id: uuid.UUID) -> TierView:
    """The account's tier, its qualifying points and the way to the next tier."""
    account = await get_account(session, account_id)
    program = await current_program(session)
    now = datetime.now(UTC)
    window_start = now - program.qualification_window
    qualifying = await store.qualifying_points(session, account_id, window_start)
    held = program.tier(account.tier)
    upper = program.next_tier(held.id)
    return TierView(
        tier=held.id,
        qualifying_points=qualifying,
        window_start=window_start,
        next_tier=upper.id if upper else "",
        points_to_next_tier=max(upper.qualifying_points - qualifying, 0) if upper else 0,
        review_time=account.tier_review_time,
        qualified_tier=program.qualified_tier(qualifying).id,
    )


async def list_entries(
    session: AsyncSession, account_id: uuid.UUID, page: PageRequest, criteria: dict[str, str]
) -> EntryPage:
    """A page of the account's entries, newest first."""
    await get_account(session, account_id)
    entries = await store.list_entries(session, account_id, page)
    if len(entries) <= page.size:
        return EntryPage(entries, "")
    shown = entries[: page.size]
    return EntryPage(shown, next_page_token([shown[-1].number], criteria))
