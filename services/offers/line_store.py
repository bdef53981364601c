"""The local read model of the customer service's lines (what retirement and erasure need), and the
lines of retired plans waiting for their proposal."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import rows_affected


@dataclass(frozen=True)
class DueProposal:
    """A line of a retired plan that has no proposal yet."""

    retired_plan: str
    subscription_id: uuid.UUID
    customer_id: uuid.UUID


async def upsert_line(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    tariff_plan: str,
    home_region: str,
    active: bool,
    now: datetime,
) -> None:
    """Keeps a line as the customer service last announced it."""
    await session.execute(
        text(
            "INSERT INTO lines (subscription_id, customer_id, tariff_plan, home_region, active, update_time) "
            "VALUES (:s, :c, :plan, :region, :active, :now) ON CONFLICT (subscription_id) DO UPDATE SET "
            "tariff_plan = excluded.tariff_plan, home_region = excluded.home_region, active = excluded.active, "
            "update_time = excluded.update_time"
        ),
        {
            "s": subscription_id,
            "c": customer_id,
            "plan": tariff_plan,
            "region": home_region,
            "active": active,
            "now": now,
        },
    )


async def queue_lines_of_retired_plan(session: AsyncSession, plan: str, now: datetime) -> int:
    """Puts every active line on `plan` in the queue of proposals to make; returns how many."""
    result = await session.execute(
        text(
            "INSERT INTO retirement_proposals_due (retired_plan, subscription_id, customer_id, due_time) "
            "SELECT :plan, subscription_id, customer_id, :now FROM lines WHERE tariff_plan = :plan AND active "
            "ON CONFLICT DO NOTHING"
        ),
        {"plan": plan, "now": now},
    )
    return rows_affected(result)


async def take_due_proposals(session: AsyncSession, now: datetime, limit: int) -> list[DueProposal]:
    """Lines due for a proposal, locked so that another proposer skips them."""
    rows = await session.execute(
        text(
            "SELECT retired_plan, subscription_id, customer_id FROM retirement_proposals_due WHERE due_time <= :now "
            "ORDER BY due_time LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "limit": limit},
    )
    return [DueProposal(row.retired_plan, row.subscription_id, row.customer_id) for row in rows]


async def proposal_made(session: AsyncSession, due: DueProposal) -> None:
    """Takes a line off the queue."""
    await session.execute(
        text("DELETE FROM retirement_proposals_due WHERE retired_plan = :plan AND subscription_id = :s"),
        {"plan": due.retired_plan, "s": due.subscription_id},
    )


async def postpone(session: AsyncSession, due: DueProposal, when: datetime) -> None:
    """Tries a line's proposal again at `when`."""
    await session.execute(
        text(
            "UPDATE retirement_proposals_due SET due_time = :when WHERE retired_plan = :plan AND subscription_id = :s"
        ),
        {"plan": due.retired_plan, "s": due.subscription_id, "when": when},
    )


async def forget_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Erasure: drops the customer's lines, queued proposals and the advice shown to them."""
    for statement in (
        "DELETE FROM lines WHERE customer_id = :c",
        "DELETE FROM retirement_proposals_due WHERE customer_id = :c",
        "DELETE FROM tariff_recommendations WHERE customer_id = :c",
        "UPDATE plan_changes SET accepted_by = 'erased', statement = '', decline_note = '' "
        "WHERE customer_id = :c AND acceptor_kind = 'CUSTOMER'",
    ):
        await session.execute(text(statement), {"c": customer_id})
