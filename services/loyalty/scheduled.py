"""The loyalty service's scheduled work: lapse points and reservations past their time, review
tiers that are due, credit tenure anniversaries.

Every unit of work (one account, one reservation) runs in its own transaction under the account's
lock and re-checks what is due under that lock, so a run that repeats or overlaps another (a
second replica, a manual run) finds nothing left to do and changes nothing twice.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from chassis.database import Database
from services.loyalty import accounts, catalog_store, earning, redemptions, store
from services.loyalty.programs import current_program

BATCH = 500
MAX_BATCHES = 100
"""Bound on one run: at most this many batches per kind of work; the next run continues."""


@dataclass(frozen=True)
class WorkDone:
    """What one run did."""

    expired_points: int = 0
    accounts_with_expired_points: int = 0
    expired_reservations: int = 0
    tiers_reviewed: int = 0
    tiers_lowered: int = 0
    anniversary_credits: int = 0


async def run_scheduled_work(database: Database) -> WorkDone:
    """Does everything that is due now."""
    now = datetime.now(UTC)
    expired_reservations = await _expire_reservations(database, now)
    expired_points, accounts_expired = await _expire_points(database, now)
    reviewed, lowered = await _review_tiers(database, now)
    anniversaries = await _credit_anniversaries(database, now)
    return WorkDone(expired_points, accounts_expired, expired_reservations, reviewed, lowered, anniversaries)


async def _expire_reservations(database: Database, now: datetime) -> int:
    expired = 0
    for _ in range(MAX_BATCHES):
        async with database.transaction() as session:
            due = await catalog_store.lapsed_reservations(session, now, BATCH)
        for account_id, reservation_id in due:
            async with database.transaction() as session:
                expired += await redemptions.expire_reservation(session, account_id, reservation_id)
        if len(due) < BATCH:
            break
    return expired


async def _expire_points(database: Database, now: datetime) -> tuple[int, int]:
    points = accounts_expired = 0
    for _ in range(MAX_BATCHES):
        async with database.transaction() as session:
            program = await current_program(session)
            due = await store.accounts_with_lapsed_lots(session, now, BATCH)
        for account_id in due:
            async with database.transaction() as session:
                expired = await accounts.expire_lapsed_points(session, account_id, program, now)
            points += expired
            accounts_expired += expired > 0
        if len(due) < BATCH:
            break
    return points, accounts_expired


async def _review_tiers(database: Database, now: datetime) -> tuple[int, int]:
    reviewed = lowered = 0
    for _ in range(MAX_BATCHES):
        async with database.transaction() as session:
            program = await current_program(session)
            due = await store.accounts_due_for_review(session, now, BATCH)
        for account_id in due:
            async with database.transaction() as session:
                was_reviewed, was_lowered = await accounts.review_tier(session, account_id, program, now)
            reviewed += was_reviewed
            lowered += was_lowered
        if len(due) < BATCH:
            break
    return reviewed, lowered


async def _credit_anniversaries(database: Database, now: datetime) -> int:
    credits = 0
    today = now.date()
    for _ in range(MAX_BATCHES):
        async with database.transaction() as session:
            due = await store.accounts_due_for_anniversary(session, today, BATCH)
        for account_id in due:
            async with database.transaction() as session:
                credits += await earning.credit_anniversary(session, account_id, today)
        if len(due) < BATCH:
            break
    return credits
