"""Segmentation tables and queries: the config, memberships with kept counters, scores, the VIP
ranking and the evaluator's place in the outbox. Every per-customer query is keyed by the customer.
The store writes what the rules and use cases decided; it decides nothing itself."""

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.pagination import PageRequest
from services.customer.segments.config import SegmentationConfig
from services.customer.segments.rules import CustomerScore, Evaluation, Evidence, Membership, StoredMembership

# Any fixed number shared by every replica: one evaluates or ranks at a time.
_EVALUATOR_LOCK = 0x5E6E7A7E


@dataclass(frozen=True)
class OutboxEntry:
    """An event of the outbox, as much as the evaluator reads of it."""

    position: int
    type: str
    aggregate_id: str


# Config ---------------------------------------------------------------------------------------------


async def load_config(session: AsyncSession) -> tuple[SegmentationConfig, int]:
    """The segmentation config and its version (defaults, version 0, until first changed)."""
    row = (await session.execute(text("SELECT config, version FROM segmentation_config WHERE id = 1"))).first()
    if row is None:
        return SegmentationConfig(), 0
    return SegmentationConfig.from_json(row.config), row.version


async def lock_config(session: AsyncSession) -> None:
    """Holds the config until the transaction ends, so that concurrent updates queue up (the row may
    not exist yet, so an advisory lock stands in for a row lock)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('segmentation_config'))"))


async def save_config(session: AsyncSession, config: SegmentationConfig, version: int, now: datetime) -> None:
    """Stores the config as `version`."""
    await session.execute(
        text(
            "INSERT INTO segmentation_config (id, config, version, update_time) VALUES (1, :config, :version, :now) "
            "ON CONFLICT (id) DO UPDATE SET config = excluded.config, version = excluded.version, "
            "update_time = excluded.update_time"
        ),
        {"config": json.dumps(config.to_json()), "version": version, "now": now},
    )


# Memberships and scores -----------------------------------------------------------------------------


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


async def save_memberships(
    session: AsyncSession, customer_id: uuid.UUID, memberships: Sequence[Membership], now: datetime
) -> None:
    """Writes the memberships, new ones since `now`; memberships kept keep their `since`."""
    for membership in memberships:
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


async def delete_memberships(session: AsyncSession, customer_id: uuid.UUID, segments: Sequence[str]) -> None:
    """Removes the customer from these segments."""
    if segments:
        await session.execute(
            text("DELETE FROM segment_memberships WHERE customer_id = :c AND segment = ANY(:left)"),
            {"c": customer_id, "left": list(segments)},
        )


async def save_score(
    session: AsyncSession,
    customer_id: uuid.UUID,
    evaluation: Evaluation,
    *,
    average_monthly_spend: Decimal,
    now: datetime,
) -> None:
    """Writes the customer's latest score and the spend the VIP ranking orders by."""
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


async def delete_customer_segments(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Removes every membership and the score of a customer."""
    await session.execute(text("DELETE FROM segment_memberships WHERE customer_id = :c"), {"c": customer_id})
    await session.execute(text("DELETE FROM customer_scores WHERE customer_id = :c"), {"c": customer_id})


async def adjust_counts(session: AsyncSession, changes: Mapping[str, int]) -> None:
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
        {"segment": segment, "after": after, "limit": page.fetch_size},
    )
    return [r.customer_id for r in rows]


# The evaluator's place in the outbox and the VIP ranking --------------------------------------------


async def try_lock_evaluator(session: AsyncSession) -> bool:
    """Whether this transaction may evaluate now (no other replica is evaluating or ranking)."""
    locked = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _EVALUATOR_LOCK})).scalar()
    return bool(locked)


async def lock_evaluator(session: AsyncSession) -> None:
    """Waits until no other replica is evaluating or ranking, then holds them off."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _EVALUATOR_LOCK})


async def events_after(session: AsyncSession, limit: int) -> list[OutboxEntry]:
    """Up to `limit` events after the position the evaluator reached, in feed order."""
    rows = await session.execute(
        text(
            "SELECT position, type, aggregateid FROM outbox "
            "WHERE position > (SELECT outbox_position FROM segmentation_state WHERE id = 1) "
            "ORDER BY position LIMIT :batch"
        ),
        {"batch": limit},
    )
    return [OutboxEntry(r.position, r.type, r.aggregateid) for r in rows]


async def save_evaluated_position(session: AsyncSession, position: int) -> None:
    """Records how far the evaluator has read the outbox."""
    await session.execute(text("UPDATE segmentation_state SET outbox_position = :p WHERE id = 1"), {"p": position})


async def vip_spend_threshold(session: AsyncSession) -> Decimal | None:
    """The average monthly spend from which a customer is VIP, from the last ranking."""
    threshold: Decimal | None = (
        await session.execute(text("SELECT vip_spend_threshold FROM segmentation_state WHERE id = 1"))
    ).scalar()
    return threshold


async def spend_at_share(session: AsyncSession, top_share: float) -> Decimal | None:
    """The average monthly spend that the top `top_share` of spending customers reach; None without any."""
    threshold: Decimal | None = (
        await session.execute(
            text(
                "SELECT percentile_disc(:q) WITHIN GROUP (ORDER BY average_monthly_spend) "
                "FROM customer_scores WHERE average_monthly_spend > 0"
            ),
            {"q": 1 - top_share},
        )
    ).scalar()
    return threshold


async def save_vip_spend_threshold(session: AsyncSession, threshold: Decimal | None, now: datetime) -> None:
    """Records the ranking's threshold and when it was computed."""
    await session.execute(
        text("UPDATE segmentation_state SET vip_spend_threshold = :t, rank_time = :now WHERE id = 1"),
        {"t": threshold, "now": now},
    )


# Membership of value-vip is decided set-wise in SQL: a ranking touches every spending customer, which
# no request may pull into Python. The comparison is the rules' (`evaluate`): spend > 0 and >= threshold.
_VIP_EVIDENCE = (
    "jsonb_build_array(jsonb_build_object('factor', 'average_monthly_spend', 'value', "
    "s.average_monthly_spend::text, 'threshold', v.t::text, 'contribution', 0), jsonb_build_object("
    "'factor', 'vip_top_share', 'value', v.share, 'threshold', '', 'contribution', 0))"
)


async def add_vip_members(
    session: AsyncSession, threshold: Decimal | None, top_share: float, now: datetime
) -> list[uuid.UUID]:
    """Puts into value-vip every customer whose spend reaches `threshold` and who is not in it yet;
    returns who entered."""
    entered = await session.execute(
        text(
            "WITH v AS (SELECT CAST(:t AS numeric) AS t, CAST(:share AS text) AS share) "
            "INSERT INTO segment_memberships (customer_id, segment, rule, evidence, since) "
            f"SELECT s.customer_id, 'value-vip', 'value.top_share', {_VIP_EVIDENCE}, :now "
            "FROM customer_scores s, v WHERE v.t IS NOT NULL AND s.average_monthly_spend >= v.t "
            "AND s.average_monthly_spend > 0 "
            "ON CONFLICT (customer_id, segment) DO NOTHING RETURNING customer_id"
        ),
        {"t": threshold, "share": str(top_share), "now": now},
    )
    return [r.customer_id for r in entered]


async def remove_vip_members(session: AsyncSession, threshold: Decimal | None) -> list[uuid.UUID]:
    """Takes out of value-vip every member whose spend is below `threshold` (all, without one);
    returns who left."""
    left = await session.execute(
        text(
            "WITH v AS (SELECT CAST(:t AS numeric) AS t) "
            "DELETE FROM segment_memberships m USING customer_scores s, v "
            "WHERE m.segment = 'value-vip' AND s.customer_id = m.customer_id "
            "AND (v.t IS NULL OR s.average_monthly_spend < v.t) RETURNING m.customer_id"
        ),
        {"t": threshold},
    )
    return [r.customer_id for r in left]


def _evidence_json(evidence: Sequence[Evidence]) -> str:
    return json.dumps(
        [
            {"factor": e.factor, "value": e.value, "threshold": e.threshold, "contribution": e.contribution}
            for e in evidence
        ]
    )


def _evidence(data: Any) -> tuple[Evidence, ...]:
    return tuple(Evidence(e["factor"], e["value"], e["threshold"], e["contribution"]) for e in data)
