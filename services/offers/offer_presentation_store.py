"""The table of offers presented to customers, and the KPIs read from it."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.pagination import PageRequest
from services.offers.action_rules import ActionKind
from services.offers.offer_lifecycle import OfferState, Presentation

RETENTION_WINDOW = timedelta(days=90)
"""How long after answering a retention offer a churn counts against it."""


@dataclass(frozen=True)
class Counted:
    """Offers presented and accepted under one key (a rule or a segment)."""

    key: str
    presented: int
    accepted: int


@dataclass(frozen=True)
class PeriodCounts:
    """What happened to the offers presented in a period."""

    presented: int
    accepted: int
    declined: int
    expired: int
    by_rule: list[Counted]
    by_segment: list[Counted]


async def insert_presentation(session: AsyncSession, presentation: Presentation) -> None:
    """Writes a new presentation."""
    await session.execute(
        text(
            "INSERT INTO offer_presentations (id, customer_id, rule_id, kind, offering, channel, segments, priority, "
            "presented_by, present_time, expire_time, state, version) VALUES (:id, :customer, :rule, :kind, "
            ":offering, :channel, :segments, :priority, :by, :present, :expire, :state, :version)"
        ),
        {
            "id": presentation.id,
            "customer": presentation.customer_id,
            "rule": presentation.rule_id,
            "kind": presentation.kind.value,
            "offering": presentation.offering,
            "channel": presentation.channel,
            "segments": list(presentation.segments),
            "priority": presentation.priority,
            "by": presentation.presented_by,
            "present": presentation.present_time,
            "expire": presentation.expire_time,
            "state": presentation.state.value,
            "version": presentation.version,
        },
    )


async def record_outcome(session: AsyncSession, presentation: Presentation) -> None:
    """Writes a presentation's answer or expiry."""
    await session.execute(
        text(
            "UPDATE offer_presentations SET state = :state, decided_by = :by, decide_channel = :channel, "
            "decide_time = :time, version = :version WHERE id = :id"
        ),
        {
            "id": presentation.id,
            "state": presentation.state.value,
            "by": presentation.decided_by,
            "channel": presentation.decide_channel,
            "time": presentation.decide_time,
            "version": presentation.version,
        },
    )


async def get_presentation(
    session: AsyncSession, presentation_id: uuid.UUID, *, lock: bool = False
) -> Presentation | None:
    """One presentation, locked for its answer when `lock`."""
    row = (
        await session.execute(
            text(f"SELECT * FROM offer_presentations WHERE id = :id{' FOR UPDATE' if lock else ''}"),
            {"id": presentation_id},
        )
    ).first()
    return presentation_from_row(row) if row else None


async def list_presentations(session: AsyncSession, customer_id: uuid.UUID, page: PageRequest) -> list[Presentation]:
    """A page of the customer's presentations, newest first."""
    after = page.after
    rows = await session.execute(
        text(
            "SELECT * FROM offer_presentations WHERE customer_id = :c AND (CAST(:time AS timestamptz) IS NULL "
            "OR (present_time, id) < (CAST(:time AS timestamptz), CAST(:id AS uuid))) "
            "ORDER BY present_time DESC, id DESC LIMIT :limit"
        ),
        {
            "c": customer_id,
            "time": datetime.fromisoformat(str(after[0])) if after else None,
            "id": str(after[1]) if after else None,
            "limit": page.fetch_size,
        },
    )
    return [presentation_from_row(row) for row in rows]


async def take_due_expiries(session: AsyncSession, now: datetime, limit: int) -> list[Presentation]:
    """Unanswered presentations past their expire_time, locked so that another worker skips them."""
    rows = await session.execute(
        text(
            "SELECT * FROM offer_presentations WHERE state = 'PRESENTED' AND expire_time <= :now "
            "ORDER BY expire_time LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "limit": limit},
    )
    return [presentation_from_row(row) for row in rows]


async def period_counts(session: AsyncSession, start: datetime, end: datetime) -> PeriodCounts:
    """The outcomes of the offers presented in [start, end) (service messages are not offers)."""
    window = {"start": start, "end": end}
    offers = (
        "FROM offer_presentations WHERE present_time >= :start AND present_time < :end AND kind <> 'SERVICE_MESSAGE'"
    )
    totals = (
        await session.execute(
            text(
                "SELECT count(*) AS presented, count(*) FILTER (WHERE state = 'ACCEPTED') AS accepted, "
                "count(*) FILTER (WHERE state = 'DECLINED') AS declined, "
                f"count(*) FILTER (WHERE state = 'EXPIRED') AS expired {offers}"
            ),
            window,
        )
    ).one()
    by_rule = await session.execute(
        text(
            "SELECT rule_id AS key, count(*) AS presented, count(*) FILTER (WHERE state = 'ACCEPTED') AS accepted "
            f"{offers} GROUP BY rule_id ORDER BY rule_id"
        ),
        window,
    )
    by_segment = await session.execute(
        text(
            "SELECT segment AS key, count(*) AS presented, count(*) FILTER (WHERE state = 'ACCEPTED') AS accepted "
            f"FROM (SELECT unnest(segments) AS segment, state {offers}) AS s GROUP BY segment ORDER BY segment"
        ),
        window,
    )
    return PeriodCounts(
        totals.presented,
        totals.accepted,
        totals.declined,
        totals.expired,
        [Counted(row.key, row.presented, row.accepted) for row in by_rule],
        [Counted(row.key, row.presented, row.accepted) for row in by_segment],
    )


async def savings_given(session: AsyncSession, start: datetime, end: datetime) -> tuple[dict[str, int], int]:
    """Monthly savings (minor units by currency) of plan changes applied in [start, end) to the plan an
    honest recommendation advised, and how many such changes."""
    rows = await session.execute(
        text(
            "SELECT r.currency, sum(r.monthly_saving_minor) AS saving, count(*) AS changes FROM plan_changes c "
            "JOIN tariff_recommendations r ON r.id = c.recommendation_id AND r.recommended_plan = c.to_plan "
            "WHERE c.state = 'APPLIED' AND c.settle_time >= :start AND c.settle_time < :end AND r.currency <> '' "
            "GROUP BY r.currency ORDER BY r.currency"
        ),
        {"start": start, "end": end},
    )
    found = list(rows)
    return {row.currency: int(row.saving) for row in found}, sum(int(row.changes) for row in found)


async def churn_after_retention(
    session: AsyncSession, state: OfferState, start: datetime, end: datetime
) -> tuple[int, int]:
    """(customers, churned within 90 days) of those who answered a retention offer with `state` in [start, end)."""
    row = (
        await session.execute(
            text(
                "SELECT count(*) AS customers, count(*) FILTER (WHERE churned) AS churned FROM ("
                "SELECT p.customer_id, bool_or(ch.churn_time IS NOT NULL AND ch.churn_time >= p.decide_time "
                "AND ch.churn_time < p.decide_time + :window) AS churned FROM offer_presentations p "
                "LEFT JOIN customer_churn ch ON ch.customer_id = p.customer_id "
                "WHERE p.kind = 'RETENTION_OFFER' AND p.state = :state AND p.decide_time >= :start "
                "AND p.decide_time < :end AND p.customer_id IS NOT NULL GROUP BY p.customer_id) AS answered"
            ),
            {"state": state.value, "start": start, "end": end, "window": RETENTION_WINDOW},
        )
    ).one()
    return int(row.customers), int(row.churned)


async def record_churn(session: AsyncSession, customer_id: uuid.UUID, churn_time: datetime | None) -> None:
    """Keeps when the customer churned (None while they have not, or came back)."""
    await session.execute(
        text(
            "INSERT INTO customer_churn (customer_id, churn_time) VALUES (:c, :time) "
            "ON CONFLICT (customer_id) DO UPDATE SET churn_time = excluded.churn_time"
        ),
        {"c": customer_id, "time": churn_time},
    )


async def forget_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Erasure: the customer's presentations stay counted but no longer name them or who decided."""
    await session.execute(
        text(
            "UPDATE offer_presentations SET customer_id = NULL, presented_by = 'erased', "
            "decided_by = CASE WHEN decided_by = '' THEN '' ELSE 'erased' END WHERE customer_id = :c"
        ),
        {"c": customer_id},
    )
    await session.execute(text("DELETE FROM customer_churn WHERE customer_id = :c"), {"c": customer_id})


def presentation_from_row(row: Row[Any]) -> Presentation:
    """A presentation as stored."""
    return Presentation(
        id=row.id,
        customer_id=row.customer_id,
        rule_id=row.rule_id,
        kind=ActionKind(row.kind),
        offering=row.offering,
        channel=row.channel,
        segments=tuple(row.segments),
        priority=row.priority,
        presented_by=row.presented_by,
        present_time=row.present_time,
        expire_time=row.expire_time,
        state=OfferState(row.state),
        decided_by=row.decided_by,
        decide_channel=row.decide_channel,
        decide_time=row.decide_time,
        version=row.version,
    )
