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


# Kinds whose points count as earned or redeemed over the account's life.
_EARNING_KINDS = frozenset({EntryKind.EARN, EntryKind.GOODWILL})
_REDEEMING_KINDS = frozenset({EntryKind.REDEEM, EntryKind.CAPTURE})


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


def reversal(target: Entry, *, already_reversed: bool, reason: str = "") -> Posting:
    """The exact opposite of `target`; a reversal cannot be reversed, and nothing is reversed twice."""
    name = {"entry": str(target.number)}
    if target.kind is EntryKind.REVERSE:
        raise FailedPrecondition("REVERSAL_NOT_REVERSIBLE", "a reversal cannot itself be reversed", name)
    if already_reversed:
        raise FailedPrecondition("ALREADY_REVERSED", f"entry {target.number} was reversed before", name)
    violations = Violations()
    if len(reason.strip()) > MAX_REASON_LENGTH:
        violations.add("reason", f"must be at most {MAX_REASON_LENGTH} characters")
    violations.raise_if_any()
    return Posting(
        EntryKind.REVERSE,
        -target.points,
        reason.strip() or f"reversal of entry {target.number}",
        reversed_entry=target.number,
        reversed_kind=target.kind,
    )


def post(account: Account, posting: Posting, *, actor: str, now: datetime) -> tuple[Account, Entry]:
    """The account after `posting` and the entry that records it; INSUFFICIENT_POINTS when the
    balance would go below zero."""
    balance = account.balance + posting.points
    if balance < 0:
        raise FailedPrecondition(
            "INSUFFICIENT_POINTS",
            f"the account holds {account.balance} points; {-posting.points} are needed",
            {"available_points": str(account.balance), "required_points": str(-posting.points)},
        )
    counted_kind = posting.reversed_kind if posting.kind is EntryKind.REVERSE else posting.kind
    earned = posting.points if counted_kind in _EARNING_KINDS else 0
    redeemed = -posting.points if counted_kind in _REDEEMING_KINDS else 0
    updated = replace(
        account,
        balance=balance,
        lifetime_earned=account.lifetime_earned + earned,
        lifetime_redeemed=account.lifetime_redeemed + redeemed,
        entry_count=account.entry_count + 1,
        update_time=now,
    )
    entry = Entry(
        account_id=account.id,
        number=updated.entry_count,
        kind=posting.kind,
        points=posting.points,
        balance_after=balance,
        reason=posting.reason,
        source_reference=posting.source_reference,
        reversed_entry=posting.reversed_entry,
        actor=actor,
        create_time=now,
    )
    return updated, entry


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
