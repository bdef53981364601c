"""The program's figures: what the operator owes in points, how points flow, who holds which tier."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.errors import invalid_field
from services.loyalty import store
from services.loyalty.program_rules import Money
from services.loyalty.program_versions import current_program

DEFAULT_PERIOD = timedelta(days=30)


@dataclass(frozen=True)
class ProgramKpis:
    """Liability now and flows over a period."""

    start: datetime
    end: datetime
    outstanding_points: int
    liability: Money
    earned: int
    redeemed: int
    expired: int
    redemption_rate: float
    members_per_tier: list[tuple[str, int]]
    redeeming_accounts: int
    active_accounts: int


def reporting_period(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The period [start, end) the flows are counted over: it ends at `now` and lasts 30 days unless
    given; INVALID_ARGUMENT when it does not start before it ends."""
    end = end or now
    start = start or end - DEFAULT_PERIOD
    if start >= end:
        raise invalid_field("start_time", "must be before end_time")
    return start, end


async def program_kpis(session: AsyncSession, start: datetime, end: datetime) -> ProgramKpis:
    """The figures for [start, end); liability and tiers as they stand now."""
    program = await current_program(session)
    moved = await store.flows(session, start, end)
    outstanding, per_tier, active = await store.holdings(session)
    # Accounts whose tier left the program count in the lowest tier, as the program treats them.
    members = {tier.id: 0 for tier in program.tiers}
    for tier_id, count in per_tier.items():
        members[program.tier(tier_id).id] += count
    return ProgramKpis(
        start=start,
        end=end,
        outstanding_points=outstanding,
        liability=Money(program.point_value.currency_code, program.point_value.amount * outstanding),
        earned=moved.earned,
        redeemed=moved.redeemed,
        expired=moved.expired,
        redemption_rate=moved.redeemed / moved.earned if moved.earned > 0 else 0.0,
        members_per_tier=list(members.items()),
        redeeming_accounts=moved.redeeming_accounts,
        active_accounts=active,
    )
