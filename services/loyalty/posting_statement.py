"""The one statement that writes an earning, goodwill or redemption asked for through the API: a call
of the database function `post_points` (written by migration 0004, last rewritten by 0008), its
arguments in the function's order, and what it answers."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

import asyncpg


class PointsPostingCall(NamedTuple):
    """The arguments of `post_points`, in its order."""

    caller: str
    request_id: str
    method: str
    """The request message's type: an id reused for another method is refused."""
    fingerprint: bytes
    program_version: int
    """The program version the terms below are from; the function refuses to post by another."""
    account_id: uuid.UUID
    kind: str
    points: int
    """Signed: positive credits, negative debits."""
    earned: int
    """What the posting adds to the lifetime points earned."""
    redeemed: int
    """What the posting adds to the lifetime points redeemed."""
    reason: str
    source_reference: str
    actor: str
    now: datetime
    lot_expire_time: datetime | None
    """When a credit's new points lapse; None for a debit, which draws on the lots that lapse soonest."""
    lot_qualifies: bool
    """Whether the new points count towards tiers (earned, not granted)."""
    window_start: datetime
    """Start of the qualification window: points earned after it count towards tiers."""
    tier_ids: list[str]
    """The program's tiers from the lowest."""
    tier_thresholds: list[int]
    """The qualifying points each tier needs, in the same order."""
    tier_review_time: datetime
    """When a tier raised by this posting is next reviewed."""
    entry_name_prefix: str
    """The entry's resource name without its number."""
    entry_without_name: bytes
    """The entry's LedgerEntry message without the name and balance the database adds."""
    tier_changed_without_tiers: bytes
    """The TierChanged message the posting announces if it raises the tier, without the tiers and
    points the database adds."""
    aggregate_type: str
    aggregate_id: str
    entry_posted_type: str
    tier_changed_type: str
    trace_id: str


class Outcome(StrEnum):
    """What `post_points` did."""

    POSTED = "POSTED"
    REPLAYED = "REPLAYED"
    """The request id was used before: nothing written, its stored answer returned."""
    PROGRAM_CHANGED = "PROGRAM_CHANGED"
    """Nothing written: the program in force is another version than the call's terms."""
    NO_ACCOUNT = "NO_ACCOUNT"
    ACCOUNT_CLOSED = "ACCOUNT_CLOSED"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"


class PointsPostingResult(NamedTuple):
    """The row `post_points` answers."""

    outcome: Outcome
    entry_number: int | None
    """The entry written (POSTED)."""
    entry_balance: int | None
    """The balance after it (POSTED)."""
    available_points: int | None
    """The balance that did not cover the debit (INSUFFICIENT_POINTS)."""
    program_version: int
    """The version in force."""
    stored_method: str | None
    """The stored request's method, fingerprint and answer (REPLAYED); the answer is None once erased."""
    stored_fingerprint: bytes | None
    stored_response: bytes | None


_POST_POINTS = f"SELECT * FROM post_points({', '.join(f'${n}' for n in range(1, len(PointsPostingCall._fields) + 1))})"


async def post_points(connection: asyncpg.Connection, call: PointsPostingCall) -> PointsPostingResult:
    """Runs `post_points` as a statement of its own (its own transaction)."""
    row = await connection.fetchrow(_POST_POINTS, *call)
    if row is None:
        raise RuntimeError("post_points answered no row")
    outcome, *rest = row.values()
    return PointsPostingResult(Outcome(outcome), *rest)
