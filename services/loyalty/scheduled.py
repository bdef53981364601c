"""The loyalty service's scheduled work: lapse points and reservations past their time, review
tiers that are due, credit tenure anniversaries.

Every unit of work (one account, one reservation) runs in its own transaction under the account's
lock and re-checks what is due under that lock, so a run that repeats or overlaps another (a
second replica, a manual run) finds nothing left to do and changes nothing twice.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock
from chassis.database import Database
from services.loyalty import accounts, catalog_store, earning, redemptions, store
from services.loyalty.program_versions import current_program

BATCH = 500
MAX_BATCHES = 100
"""Bound on one run: at most this many batches per kind of work; the next run continues."""
Due = TypeVar("Due")


@dataclass(frozen=True)
class WorkDone:
    """What one run did."""

    expired_points: int = 0
    accounts_with_expired_points: int = 0
    expired_reservations: int = 0
    tiers_reviewed: int = 0
    tiers_lowered: int = 0
    anniversary_credits: int = 0


async def run_scheduled_work(database: Database, clock: Clock) -> WorkDone:
    """Does everything that is due at the time `clock` tells when the run starts."""
    # One moment for the whole run: what it finds due is what it does.
    now = clock.now()
    today = now.date()
    async with database.transaction() as session:
        program = await current_program(session)

    async def expire_reservation(session: AsyncSession, due: tuple[uuid.UUID, uuid.UUID]) -> tuple[int, ...]:
        return (int(await redemptions.expire_reservation(session, *due, now)),)

    async def expire_points(session: AsyncSession, account_id: uuid.UUID) -> tuple[int, ...]:
        expired = await accounts.expire_lapsed_points(session, account_id, program, now)
        return expired, int(expired > 0)

    async def review_tier(session: AsyncSession, account_id: uuid.UUID) -> tuple[int, ...]:
        return tuple(map(int, await accounts.review_tier(session, account_id, program, now)))

    async def credit_anniversary(session: AsyncSession, account_id: uuid.UUID) -> tuple[int, ...]:
        return (await earning.credit_anniversary(session, account_id, now),)

    (expired_reservations,) = await _each_due(
        database, lambda s: catalog_store.lapsed_reservations(s, now, BATCH), expire_reservation, 1
    )
    expired_points, accounts_expired = await _each_due(
        database, lambda s: store.accounts_with_lapsed_lots(s, now, BATCH), expire_points, 2
    )
    reviewed, lowered = await _each_due(
        database, lambda s: store.accounts_due_for_review(s, now, BATCH), review_tier, 2
    )
    (anniversaries,) = await _each_due(
        database, lambda s: store.accounts_due_for_anniversary(s, today, BATCH), credit_anniversary, 1
    )
    return WorkDone(expired_points, accounts_expired, expired_reservations, reviewed, lowered, anniversaries)


async def _each_due(
    database: Database,
    find_due: Callable[[AsyncSession], Awaitable[Sequence[Due]]],
    do_one: Callable[[AsyncSession, Due], Awaitable[tuple[int, ...]]],
    counters: int,
) -> tuple[int, ...]:
    """Finds what is due a batch at a time (at most MAX_BATCHES) and does each unit in a transaction
    of its own; returns the units' counters summed."""
    totals = [0] * counters
    for _ in range(MAX_BATCHES):
        async with database.transaction() as session:
            due = await find_due(session)
        for unit in due:
            async with database.transaction() as session:
                done = await do_one(session, unit)
            totals = [total + count for total, count in zip(totals, done, strict=True)]
        if len(due) < BATCH:
            break
    return tuple(totals)
