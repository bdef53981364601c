"""The points ledger's rules, plain Python: what may be posted to an account and what it does to it.

An account's balance is the sum of its entries and never goes below zero. Entries are immutable;
a mistake is undone by a reversal, the exact opposite of one earlier entry, written at most once.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chassis.errors import FailedPrecondition, Violations

MAX_POINTS_PER_ENTRY = 1_000_000_000
MAX_REASON_LENGTH = 500
MAX_SOURCE_REFERENCE_LENGTH = 200


class EntryKind(StrEnum):
    """What an entry records; the reserved kinds belong to expiry and partner-shop redemptions."""

    EARN = "EARN"
    REDEEM = "REDEEM"
    GOODWILL = "GOODWILL"
    REVERSE = "REVERSE"
    ADJUST = "ADJUST"
    RESERVE = "RESERVE"
    RELEASE = "RELEASE"
    CAPTURE = "CAPTURE"
    EXPIRE = "EXPIRE"


class AccountState(StrEnum):
    """Whether an account takes postings."""

    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"


# Kinds whose points count as earned or redeemed over the account's life.
_EARNING_KINDS = frozenset({EntryKind.EARN, EntryKind.GOODWILL})
_REDEEMING_KINDS = frozenset({EntryKind.REDEEM, EntryKind.CAPTURE})
# Credits that bring new points, each into a lot of its own that lapses.
NEW_POINT_KINDS = frozenset({EntryKind.EARN, EntryKind.GOODWILL, EntryKind.ADJUST})
# What a reversal can undo: credits of new points, and spending.
REVERSIBLE_KINDS = frozenset(
    {EntryKind.EARN, EntryKind.GOODWILL, EntryKind.ADJUST, EntryKind.REDEEM, EntryKind.CAPTURE}
)


@dataclass(frozen=True)
class Account:
    """A loyalty account's state: its balance and the running totals the ledger keeps."""

    id: uuid.UUID
    balance: int = 0
    lifetime_earned: int = 0
    lifetime_redeemed: int = 0
    entry_count: int = 0
    """Number of the newest entry; entries are numbered 1, 2, 3... per account."""
    create_time: datetime | None = None
    update_time: datetime | None = None
    reserved: int = 0
    """Points held by reservations; not spendable, not lost."""
    lifetime_expired: int = 0
    tier: str = ""
    tier_review_time: datetime | None = None
    state: AccountState = AccountState.ACTIVE


@dataclass(frozen=True)
class Posting:
    """A movement of points someone asked for, checked but not yet applied to an account."""

    kind: EntryKind
    points: int
    """Signed: positive credits, negative debits; never zero."""
    reason: str
    source_reference: str = ""
    reversed_entry: int | None = None
    reversed_kind: EntryKind | None = None
    """For a reversal, the kind of the entry it undoes (keeps the lifetime totals net)."""
    reserved_change: int = 0
    """Signed change of the reserved points."""
    rule: str = ""
    """The earning rule that produced a credit."""
    source_key: str = ""
    """The fact a rule credits, unique per rule and account (an event id, "tenure-3")."""
    source_event: uuid.UUID | None = None
    reservation: uuid.UUID | None = None


@dataclass(frozen=True)
class Entry:
    """One immutable line of an account's ledger."""

    account_id: uuid.UUID
    number: int
    kind: EntryKind
    points: int
    balance_after: int
    reason: str
    source_reference: str
    reversed_entry: int | None
    actor: str
    create_time: datetime
    reserved_change: int = 0
    rule: str = ""
    source_event: uuid.UUID | None = None
    reservation: uuid.UUID | None = None
    expire_time: datetime | None = None
    """For a credit of new points, when they lapse."""


@dataclass(frozen=True)
class Lot:
    """Points of one credit that are still spendable, and when they lapse."""

    number: int
    """The entry that credited them."""
    expire_time: datetime
    remaining: int


def earning(points: int, reason: str, source_reference: str = "") -> Posting:
    """Points earned: a positive amount with a reason."""
    return Posting(EntryKind.EARN, _checked_credit(points, reason, source_reference), reason.strip(), source_reference)


def goodwill(points: int, reason: str) -> Posting:
    """Points granted as a gesture of goodwill: a positive amount, and the reason is required."""
    return Posting(EntryKind.GOODWILL, _checked_credit(points, reason, ""), reason.strip())


def redemption(points: int, reason: str, source_reference: str = "") -> Posting:
    """Points spent: a positive amount with a reason, debited from the balance."""
    return Posting(
        EntryKind.REDEEM, -_checked_credit(points, reason, source_reference), reason.strip(), source_reference
    )


def earning_by_rule(
    points: int, rule_id: str, reason: str, source_key: str, source_event: uuid.UUID | None, source_reference: str = ""
) -> Posting:
    """Points an earning rule credits for one business fact."""
    return Posting(
        EntryKind.EARN,
        points,
        reason[:MAX_REASON_LENGTH],
        source_reference[:MAX_SOURCE_REFERENCE_LENGTH],
        rule=rule_id,
        source_key=source_key,
        source_event=source_event,
    )


def reservation_hold(points: int, reservation: uuid.UUID, reason: str) -> Posting:
    """Points moved from available to reserved for a partner-shop redemption."""
    return Posting(EntryKind.RESERVE, -points, reason, reserved_change=points, reservation=reservation)


def reservation_capture(points: int, reservation: uuid.UUID, reason: str) -> Posting:
    """Reserved points spent: the prize was handed over."""
    return Posting(EntryKind.CAPTURE, 0, reason, reserved_change=-points, reservation=reservation)


def reservation_release(points: int, reservation: uuid.UUID, reason: str) -> Posting:
    """Reserved points given back to the available balance."""
    return Posting(EntryKind.RELEASE, points, reason, reserved_change=-points, reservation=reservation)


def expiry(points: int, reason: str) -> Posting:
    """Points that lapsed unused."""
    return Posting(EntryKind.EXPIRE, -points, reason)


def spent_points(entry: Entry) -> int:
    """Points an entry took out of the customer's hands for good (a redemption or a capture)."""
    return -entry.reserved_change if entry.kind is EntryKind.CAPTURE else -entry.points


def reversal(target: Entry, *, already_reversed: bool, reason: str = "") -> Posting:
    """The exact opposite of what `target` did to the customer's points: a credit taken back, or
    spent points returned. Reservations are released rather than reversed; nothing is reversed twice."""
    name = {"entry": str(target.number), "kind": target.kind.value}
    if target.kind not in REVERSIBLE_KINDS:
        raise FailedPrecondition("NOT_REVERSIBLE", f"a {target.kind.value.lower()} entry cannot be reversed", name)
    if already_reversed:
        raise FailedPrecondition("ALREADY_REVERSED", f"entry {target.number} was reversed before", name)
    violations = Violations()
    if len(reason.strip()) > MAX_REASON_LENGTH:
        violations.add("reason", f"must be at most {MAX_REASON_LENGTH} characters")
    violations.raise_if_any()
    points = spent_points(target) if target.kind in _REDEEMING_KINDS else -target.points
    return Posting(
        EntryKind.REVERSE,
        points,
        reason.strip() or f"reversal of entry {target.number}",
        reversed_entry=target.number,
        reversed_kind=target.kind,
    )


@dataclass(frozen=True)
class LifetimeChanges:
    """What a posting adds to an account's lifetime totals."""

    earned: int
    redeemed: int
    expired: int


def lifetime_changes(posting: Posting) -> LifetimeChanges:
    """The lifetime totals a posting moves: a reversal moves those of the kind it undoes, back."""
    counted_kind = posting.reversed_kind if posting.kind is EntryKind.REVERSE else posting.kind
    earned = posting.points if counted_kind in _EARNING_KINDS else 0
    # A capture spends reserved points; its reversal gives them back as available points.
    redeemed = (-posting.points - posting.reserved_change) if counted_kind in _REDEEMING_KINDS else 0
    expired = -posting.points if posting.kind is EntryKind.EXPIRE else 0
    return LifetimeChanges(earned, redeemed, expired)


def account_closed(account_id: uuid.UUID) -> FailedPrecondition:
    """ACCOUNT_CLOSED: the customer was erased, the account takes no more points."""
    return FailedPrecondition(
        "ACCOUNT_CLOSED", "the account was closed when its customer was erased", {"account": str(account_id)}
    )


def insufficient_points(available: int, required: int) -> FailedPrecondition:
    """INSUFFICIENT_POINTS: a debit of `required` points from an account holding `available`."""
    return FailedPrecondition(
        "INSUFFICIENT_POINTS",
        f"the account holds {available} points; {required} are needed",
        {"available_points": str(available), "required_points": str(required)},
    )


def entry_of(
    account_id: uuid.UUID,
    posting: Posting,
    *,
    number: int,
    balance_after: int,
    actor: str,
    now: datetime,
    expire_time: datetime | None,
) -> Entry:
    """The entry that records `posting` as the account's entry `number`; new points lapse at `expire_time`."""
    return Entry(
        account_id=account_id,
        number=number,
        kind=posting.kind,
        points=posting.points,
        balance_after=balance_after,
        reason=posting.reason,
        source_reference=posting.source_reference,
        reversed_entry=posting.reversed_entry,
        actor=actor,
        create_time=now,
        reserved_change=posting.reserved_change,
        rule=posting.rule,
        source_event=posting.source_event,
        reservation=posting.reservation,
        expire_time=expire_time if posting.kind in NEW_POINT_KINDS else None,
    )


def post(
    account: Account, posting: Posting, *, actor: str, now: datetime, expire_time: datetime | None = None
) -> tuple[Account, Entry]:
    """The account after `posting` and the entry that records it; INSUFFICIENT_POINTS when the
    balance would go below zero, ACCOUNT_CLOSED when the customer was erased. `expire_time` is when
    new points lapse."""
    if account.state is AccountState.CLOSED and posting.kind not in (EntryKind.EXPIRE, EntryKind.RELEASE):
        raise account_closed(account.id)
    balance = account.balance + posting.points
    reserved = account.reserved + posting.reserved_change
    if balance < 0:
        raise insufficient_points(account.balance, -posting.points)
    if reserved < 0:
        raise FailedPrecondition("RESERVATION_SETTLED", "the reserved points were settled before")
    changes = lifetime_changes(posting)
    updated = replace(
        account,
        balance=balance,
        reserved=reserved,
        lifetime_earned=account.lifetime_earned + changes.earned,
        lifetime_redeemed=account.lifetime_redeemed + changes.redeemed,
        lifetime_expired=account.lifetime_expired + changes.expired,
        entry_count=account.entry_count + 1,
        update_time=now,
    )
    entry = entry_of(
        account.id,
        posting,
        number=updated.entry_count,
        balance_after=balance,
        actor=actor,
        now=now,
        expire_time=expire_time,
    )
    return updated, entry


def plan_draws(lots: list[Lot], points: int, *, first: int | None = None) -> list[tuple[int, int]]:
    """Which lots a debit of `points` takes from: the lot numbered `first` when given (a credit
    being reversed), then the lots that lapse soonest. Returns (lot, points) pairs."""
    ordered = sorted(lots, key=lambda lot: (lot.number != first, lot.expire_time, lot.number))
    draws: list[tuple[int, int]] = []
    left = points
    for lot in ordered:
        if left <= 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            draws.append((lot.number, take))
            left -= take
    if left > 0:
        # The balance covered the debit, so the lots must too; anything else is a broken ledger.
        raise AssertionError(f"lots hold {points - left} points, {points} needed")
    return draws


def _checked_credit(points: int, reason: str, source_reference: str) -> int:
    violations = Violations()
    if points <= 0:
        violations.add("points", "must be positive")
    elif points > MAX_POINTS_PER_ENTRY:
        violations.add("points", f"must be at most {MAX_POINTS_PER_ENTRY}")
    if not reason.strip():
        violations.add("reason", "is required")
    elif len(reason.strip()) > MAX_REASON_LENGTH:
        violations.add("reason", f"must be at most {MAX_REASON_LENGTH} characters")
    if len(source_reference) > MAX_SOURCE_REFERENCE_LENGTH:
        violations.add("source_reference", f"must be at most {MAX_SOURCE_REFERENCE_LENGTH} characters")
    violations.raise_if_any()
    return points
