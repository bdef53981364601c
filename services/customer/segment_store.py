"""Segmentation data of the customer database: the config, memberships with kept counters, scores,
and the inputs the rules read. Every per-customer query is keyed by the customer."""

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.errors import etag_mismatch
from chassis.pagination import PageRequest
from services.customer import billing_store, store
from services.customer.domain import Customer, Individual
from services.customer.segmentation import (
    Evaluation,
    Evidence,
    Membership,
    MonthTotals,
    SegmentationConfig,
    SegmentInputs,
)

USAGE_MONTHS = 4


@dataclass(frozen=True)
class StoredMembership:
    """A membership as stored."""

    segment: str
    rule: str
    evidence: tuple[Evidence, ...]
    since: datetime


@dataclass(frozen=True)
class CustomerScore:
    """The latest evaluation's numbers for a customer."""

    churn_risk_score: float
    churn_factors: tuple[Evidence, ...]
    evaluate_time: datetime


async def load_config(session: AsyncSession) -> tuple[SegmentationConfig, int]:
    """The segmentation config and its version (defaults, version 0, until first changed)."""
    row = (await session.execute(text("SELECT config, version FROM segmentation_config WHERE id = 1"))).first()
    if row is None:
        return SegmentationConfig(), 0
    return SegmentationConfig.from_json(row.config), row.version


async def save_config(
    session: AsyncSession, config: SegmentationConfig, *, expected_version: int | None, now: datetime
) -> int:
    """Stores a new config version; ABORTED when `expected_version` is stale. Returns the new version."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('segmentation_config'))"))
    _, current = await load_config(session)
    if expected_version is not None and expected_version != current:
        raise etag_mismatch("segmentationConfig")
    await session.execute(
        text(
            "INSERT INTO segmentation_config (id, config, version, update_time) VALUES (1, :config, :version, :now) "
            "ON CONFLICT (id) DO UPDATE SET config = excluded.config, version = excluded.version, "
            "update_time = excluded.update_time"
        ),
        {"config": json.dumps(config.to_json()), "version": current + 1, "now": now},
    )
    return current + 1


async def vip_spend_threshold(session: AsyncSession) -> Decimal | None:
    """The average monthly spend from which a customer is VIP, from the last ranking."""
    return (await session.execute(text("SELECT vip_spend_threshold FROM segmentation_state WHERE id = 1"))).scalar()


async def segment_inputs(session: AsyncSession, customer: Customer, today: date) -> SegmentInputs:
    """What the rules need to know about one customer."""
    summary = await billing_store.billing_summary(session, customer.id, today)
    first_activation = (
        await session.execute(
            text("SELECT min(activation_date) FROM subscriptions WHERE customer_id = :c"), {"c": customer.id}
        )
    ).scalar()
    months = await session.execute(
        text(
            """
            SELECT month, sum(on_net_minutes + off_net_minutes + international_minutes) AS voice,
                   sum(on_net_minutes) AS on_net, sum(data_mb) AS data, max(roaming_days) AS roaming
            FROM monthly_usage
            WHERE customer_id = :c AND month < :this_month
            GROUP BY month ORDER BY month DESC LIMIT :months
            """
        ),
        {"c": customer.id, "this_month": today.replace(day=1), "months": USAGE_MONTHS},
    )
    party = customer.profile.party
    address = customer.profile.home_address
    return SegmentInputs(
        is_individual=isinstance(party, Individual),
        organization_kind=None if isinstance(party, Individual) else party.kind,
        status=customer.status,
        churn_reason=customer.churn_reason,
        birth_date=party.birth_date if isinstance(party, Individual) else None,
        region=address.region if address else "",
        first_activation=first_activation,
        average_monthly_spend=summary.average_monthly_spend,
        days_overdue=summary.days_overdue,
        late_payment_count=summary.late_payment_count,
        months=[MonthTotals(m.month, float(m.voice), float(m.on_net), float(m.data), int(m.roaming)) for m in months],
    )


async def memberships(session: AsyncSession, customer_id: uuid.UUID) -> list[StoredMembership]:
    """The customer's current memberships, by segment name."""
    rows = await session.execute(
        text("SELECT segment, rule, evidence, since FROM segment_memberships WHERE customer_id = :c ORDER BY segment"),
        {"c": customer_id},
    )
    return [StoredMembership(r.segment, r.rule, _evidence(r.evidence), r.since) for r in rows]


async def customer_score(session: AsyncSession, customer_id: uuid.UUID) -> CustomerScore | None:
    """The customer's latest churn-risk score and its factors."""
    row = (
        await session.execute(
            text("SELECT churn_risk_score, churn_factors, evaluate_time FROM customer_scores WHERE customer_id = :c"),
            {"c": customer_id},
        )
    ).first()
    return CustomerScore(row.churn_risk_score, _evidence(row.churn_factors), row.evaluate_time) if row else None


async def store_evaluation(
    session: AsyncSession,
    customer_id: uuid.UUID,
    evaluation: Evaluation,
    *,
    average_monthly_spend: Decimal,
    now: datetime,
) -> tuple[list[Membership], list[str]]:
    """Replaces the customer's memberships and score; keeps `since` of memberships that stay and the
    member counters in step. Returns the segments entered and the names of those left."""
    current = {m.segment: m for m in await memberships(session, customer_id)}
    wanted = {m.segment: m for m in evaluation.memberships}
    entered = [m for name, m in wanted.items() if name not in current]
    left = [name for name in current if name not in wanted]
    for membership in wanted.values():
        await session.execute(
            text(
                "INSERT INTO segment_memberships (customer_id, segment, rule, evidence, since) "
                "VALUES (:c, :segment, :rule, :evidence, :now) "
                "ON CONFLICT (customer_id, segment) DO UPDATE SET rule = excluded.rule, evidence = excluded.evidence"
            ),
            {
                "c": customer_id,
                "segment": membership.segment,
                "rule": membership.rule,
                "evidence": _evidence_json(membership.evidence),
                "now": now,
            },
        )
    if left:
        await session.execute(
            text("DELETE FROM segment_memberships WHERE customer_id = :c AND segment = ANY(:left)"),
            {"c": customer_id, "left": left},
        )
    await adjust_counts(session, {m.segment: 1 for m in entered} | {name: -1 for name in left})
    await session.execute(
        text(
            "INSERT INTO customer_scores (customer_id, average_monthly_spend, churn_risk_score, churn_factors, "
            "evaluate_time) VALUES (:c, :spend, :score, :factors, :now) ON CONFLICT (customer_id) DO UPDATE SET "
            "average_monthly_spend = excluded.average_monthly_spend, churn_risk_score = excluded.churn_risk_score, "
            "churn_factors = excluded.churn_factors, evaluate_time = excluded.evaluate_time"
        ),
        {
            "c": customer_id,
            "spend": average_monthly_spend,
            "score": evaluation.churn_risk_score,
            "factors": _evidence_json(evaluation.churn_factors),
            "now": now,
        },
    )
    return entered, left


async def forget_customer(session: AsyncSession, customer_id: uuid.UUID) -> list[str]:
    """Removes every membership and score of a customer (deleted or erased); returns the segments left."""
    left = [m.segment for m in await memberships(session, customer_id)]
    await session.execute(text("DELETE FROM segment_memberships WHERE customer_id = :c"), {"c": customer_id})
    await session.execute(text("DELETE FROM customer_scores WHERE customer_id = :c"), {"c": customer_id})
    await adjust_counts(session, dict.fromkeys(left, -1))
    return left


async def adjust_counts(session: AsyncSession, changes: dict[str, int]) -> None:
    """Adds the changes to the kept member counters."""
    for segment, delta in sorted(changes.items()):
        if delta > 0:
            await session.execute(
                text(
                    "INSERT INTO segment_counts (segment, member_count) VALUES (:segment, :delta) "
                    "ON CONFLICT (segment) DO UPDATE "
                    "SET member_count = segment_counts.member_count + excluded.member_count"
                ),
                {"segment": segment, "delta": delta},
            )
        elif delta < 0:
            # A plain update: the insert form would test its negative row against the CHECK first.
            await session.execute(
                text("UPDATE segment_counts SET member_count = member_count + :delta WHERE segment = :segment"),
                {"segment": segment, "delta": delta},
            )


async def segment_counts(session: AsyncSession) -> dict[str, int]:
    """Members per segment, from the kept counters (one row per segment, not per customer)."""
    rows = await session.execute(text("SELECT segment, member_count FROM segment_counts ORDER BY segment"))
    return {r.segment: r.member_count for r in rows}


async def segment_members(session: AsyncSession, segment: str, page: PageRequest) -> list[uuid.UUID]:
    """A page of a segment's members in id order (one extra row)."""
    after = page.after_uuid()
    rows = await session.execute(
        text(
            "SELECT customer_id FROM segment_memberships WHERE segment = :segment "
            + ("AND customer_id > :after " if after else "")
            + "ORDER BY customer_id LIMIT :limit"
        ),
        {"segment": segment, "after": after, "limit": page.size + 1},
    )
    return [r.customer_id for r in rows]


async def customer_for_evaluation(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    """The customer, locked so that an evaluation sees and writes one consistent state."""
    return await store.lock_customer(session, customer_id)


def _evidence_json(evidence: tuple[Evidence, ...] | list[Evidence]) -> str:
    return json.dumps(
        [
            {"factor": e.factor, "value": e.value, "threshold": e.threshold, "contribution": e.contribution}
            for e in evidence
        ]
    )


def _evidence(data: Any) -> tuple[Evidence, ...]:
    return tuple(Evidence(e["factor"], e["value"], e["threshold"], e["contribution"]) for e in data)
