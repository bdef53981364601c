"""Use cases of the loyalty ledger over a database session: open accounts, post and reverse points,
keep the point lots and the tier in step, read balances and entries. Every change and its outbox
events share the caller's transaction; every posting holds the account's row lock.

A posting is written by one of four functions, one per way it moves the point lots: `record` (new
points open a lot, a debit draws on the lots that lapse soonest), `record_reversed_credit` (a credit
taken back from its own lot first), `record_returned_points` (points put back into the lots a debit
drew on) and `record_expiry` (lapsed lots emptied). They share one core that writes the entry, the
account, the tier and the events.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.caller import current_caller
from chassis.errors import invalid_field, not_found
from chassis.outbox import NewEvent, append_events
from chassis.pagination import Page, PageRequest
from chassis.wellknown import timestamp_to_proto
from crm.loyalty.v1 import events_pb2
from services.loyalty import catalog_store, ledger, store
from services.loyalty.ledger import Account, Entry, EntryKind, Lot, Posting
from services.loyalty.mapping import account_to_proto, entry_to_proto
from services.loyalty.program_rules import Program
from services.loyalty.program_versions import current_program
from services.loyalty.resource_names import ACCOUNT, ENTRY, RESERVATION

DEFAULT_EXPIRING_HORIZON = timedelta(days=90)
MAX_EXPIRING_HORIZON = timedelta(days=3660)

LotChange = Callable[[Entry], Awaitable[None]]
"""What a written entry does to the account's point lots."""


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


async def open_account(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> Account:
    """Opens the account in the lowest tier, or returns it unchanged when it is open already."""
    program = await current_program(session)
    tier = program.lowest_tier.id
    if await store.open_account(session, account_id, tier=tier, actor=current_caller().subject, now=now):
        account = Account(id=account_id, create_time=now, update_time=now, tier=tier)
        await announce(session, account_id, [events_pb2.AccountOpened(account=account_to_proto(account))], now)
        return account
    return await get_account(session, account_id)


async def get_account(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The account; NOT_FOUND when the customer has none."""
    account = await store.get_account(session, account_id)
    if account is None:
        raise not_found("account", ACCOUNT.format(account_id))
    return account


async def lock(session: AsyncSession, account_id: uuid.UUID) -> Account:
    """The account, locked until the transaction ends; NOT_FOUND when there is none."""
    account = await store.lock_account(session, account_id)
    if account is None:
        raise not_found("account", ACCOUNT.format(account_id))
    return account


async def reverse_entry(
    session: AsyncSession, account_id: uuid.UUID, number: int, reason: str, request_id: str, now: datetime
) -> Entry:
    """Writes the exact opposite of what one entry did, at most once: a credit is taken back (from
    its own lot first), spent points go back to the lots they came from."""
    account = await lock(session, account_id)
    target = await store.get_entry(session, account_id, number)
    if target is None:
        raise not_found("entry", ENTRY.format(account_id, number))
    already_reversed = await store.is_reversed(session, account_id, number)
    posting = ledger.reversal(target, already_reversed=already_reversed, reason=reason)
    if target.kind in ledger.NEW_POINT_KINDS:
        posted = await record_reversed_credit(session, account, posting, target.number, request_id=request_id, now=now)
    else:
        debit = await _debit_behind(session, target)
        posted = await record_returned_points(session, account, posting, debit, request_id=request_id, now=now)
    return posted.entry


async def record(
    session: AsyncSession,
    account: Account,
    posting: Posting,
    *,
    now: datetime,
    request_id: str = "",
    program: Program | None = None,
) -> Posted:
    """Writes a posting to a locked account with its lots, tier and events: new points open a lot
    that lapses after the program's validity; a debit draws on the lots that lapse soonest. The
    program in force is read unless given."""

    async def change_lots(entry: Entry) -> None:
        if entry.kind in ledger.NEW_POINT_KINDS:
            await store.insert_lot(session, entry, qualifying=entry.kind is EntryKind.EARN)
        elif entry.points < 0:
            await _draw_soonest_lapsing(session, entry, first=None)

    return await _write(session, account, posting, change_lots, now=now, request_id=request_id, program=program)


async def record_reversed_credit(
    session: AsyncSession, account: Account, posting: Posting, credit: int, *, now: datetime, request_id: str
) -> Posted:
    """Writes the reversal of the credit numbered `credit`: its points come out of the credit's own
    lot first (then the lots that lapse soonest), and the credit stops counting towards tiers."""

    async def take_back(entry: Entry) -> None:
        await store.stop_qualifying(session, account.id, credit)
        await _draw_soonest_lapsing(session, entry, first=credit)

    return await _write(session, account, posting, take_back, now=now, request_id=request_id)


async def record_returned_points(
    session: AsyncSession, account: Account, posting: Posting, debit: int, *, now: datetime, request_id: str
) -> Posted:
    """Writes a posting that gives back what the debit numbered `debit` took (a release, a reversed
    redemption or capture): the points go back into the lots they came from, with their lapse dates."""

    async def put_back(entry: Entry) -> None:
        await store.restore_draws(session, account.id, debit)

    return await _write(session, account, posting, put_back, now=now, request_id=request_id)


async def record_expiry(
    session: AsyncSession, account: Account, posting: Posting, lapsed: list[Lot], *, program: Program, now: datetime
) -> Posted:
    """Writes an expiry that empties the `lapsed` lots."""

    async def empty_lapsed(entry: Entry) -> None:
        await store.draw_lots(session, account.id, entry.number, [(lot.number, lot.remaining) for lot in lapsed])

    return await _write(session, account, posting, empty_lapsed, now=now, program=program)


async def announce(session: AsyncSession, account_id: uuid.UUID, payloads: list[Message], now: datetime) -> None:
    """Appends events about the account to the outbox."""
    aggregate = ACCOUNT.format(account_id)
    events = [NewEvent(AggregateType.LOYALTY_ACCOUNT, aggregate, payload) for payload in payloads]
    await append_events(session, events, now=now)


async def review_tier(
    session: AsyncSession, account_id: uuid.UUID, program: Program, now: datetime
) -> tuple[bool, bool]:
    """Sets a locked account's tier to what its qualifying points support, if its review is due.
    Returns (reviewed, lowered); a review already done by a concurrent run is not repeated."""
    account = await store.lock_account(session, account_id)
    if account is None or account.tier_review_time is None or account.tier_review_time > now:
        return False, False
    qualifying = await store.move_qualifying_window(session, account_id, now - program.qualification_window, now)
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
    await record_expiry(session, account, posting, lapsed, program=program, now=now)
    return points


def expiring_horizon(requested: timedelta | None) -> timedelta:
    """How far ahead a balance shows lapsing points: 90 days unless asked; INVALID_ARGUMENT outside
    (0, 3,660 days]."""
    if requested is None:
        return DEFAULT_EXPIRING_HORIZON
    if not timedelta(0) < requested <= MAX_EXPIRING_HORIZON:
        raise invalid_field("expiring_within", "must be positive and at most 3,660 days")
    return requested


async def balance(session: AsyncSession, account_id: uuid.UUID, horizon: timedelta, now: datetime) -> BalanceView:
    """Points available, reserved, and lapsing within `horizon` from `now` by day."""
    account = await get_account(session, account_id)
    expiring = await store.expiring_points(session, account_id, now + horizon)
    return BalanceView(account.balance, account.reserved, expiring)


async def tier_status(session: AsyncSession, account_id: uuid.UUID, now: datetime) -> TierView:
    """The account's tier, its qualifying points at `now` and the way to the next tier."""
    account = await get_account(session, account_id)
    program = await current_program(session)
    window_start = now - program.qualification_window
    qualifying = await store.qualifying_points(session, account_id, window_start, now)
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
) -> Page[Entry]:
    """A page of the account's entries, newest first."""
    await get_account(session, account_id)
    entries = await store.list_entries(session, account_id, page)
    return Page.cut(entries, page, lambda entry: [entry.number], criteria)


async def _write(
    session: AsyncSession,
    account: Account,
    posting: Posting,
    change_lots: LotChange,
    *,
    now: datetime,
    request_id: str = "",
    program: Program | None = None,
) -> Posted:
    """The core of every posting: the entry and the account's new state, the lots as `change_lots`
    moves them, a higher tier for earned points, and the events."""
    program = program or await current_program(session)
    updated, entry = ledger.post(
        account, posting, actor=current_caller().subject, now=now, expire_time=now + program.points_validity
    )
    await store.record_posting(session, account, updated, entry, request_id, posting.source_key)
    await change_lots(entry)
    posted = Posted(updated, entry, [events_pb2.EntryPosted(entry=entry_to_proto(entry))])
    if posting.kind is EntryKind.EARN:
        await _raise_tier(session, posted, program, now)
    await announce(session, account.id, posted.events, now)
    return posted


async def _draw_soonest_lapsing(session: AsyncSession, debit: Entry, *, first: int | None) -> None:
    """Takes a debit's points from the lot numbered `first` (when given), then from the lots that
    lapse soonest."""
    needed = -debit.points
    lots = await store.spendable_lots(session, debit.account_id, needed, first=first)
    await store.draw_lots(session, debit.account_id, debit.number, ledger.plan_draws(lots, needed, first=first))


async def _debit_behind(session: AsyncSession, spending: Entry) -> int:
    """The debit whose lot draws a reversed spending puts back: the redemption itself, or the hold
    that a capture settled."""
    if spending.kind is not EntryKind.CAPTURE or spending.reservation is None:
        return spending.number
    reservation = await catalog_store.get_reservation(session, spending.account_id, spending.reservation)
    if reservation is None:
        raise not_found("reservation", RESERVATION.format(spending.account_id, spending.reservation))
    return reservation.reserve_entry


async def _raise_tier(session: AsyncSession, posted: Posted, program: Program, now: datetime) -> None:
    """Upgrades at once when the earned points reach a higher tier; lowering waits for the review."""
    account = posted.account
    qualifying = await store.move_qualifying_window(session, account.id, now - program.qualification_window, now)
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
        account=ACCOUNT.format(account_id),
        previous_tier=previous,
        tier=tier,
        qualifying_points=qualifying,
        review_time=timestamp_to_proto(review_time),
    )
