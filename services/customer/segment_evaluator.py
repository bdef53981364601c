"""Keeps segments current: re-evaluates a customer whenever one of their inputs changes, and ranks
customers by spend for the VIP threshold.

Every input change (profile, status, line, invoice, payment, monthly usage) already writes an event
to the service's outbox in the same transaction. The evaluator reads the outbox after its stored
position, re-evaluates the customers named there, and stores memberships, scores, counters,
`SegmentsChanged` events and its new position in one transaction: each change is evaluated once,
and a crash only means the batch is read again. One replica evaluates at a time (advisory lock).
"""

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.background import RepeatingTask
from chassis.database import Database
from chassis.outbox import append_event
from crm.customer.v1 import events_pb2, segments_pb2
from services.customer import segment_store, segmentation
from services.customer.mapping import customer_name

_EVALUATOR_LOCK = 0x5E6E7A7E
BATCH_EVENTS = 500
_IGNORED_TYPES = (events_pb2.SegmentsChanged.DESCRIPTOR.full_name,)
_ERASED = events_pb2.CustomerErased.DESCRIPTOR.full_name


async def evaluate_pending(database: Database) -> int:
    """Evaluates the customers of outbox events not yet seen; returns how many events were read."""
    async with database.transaction() as session:
        if not (await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _EVALUATOR_LOCK})).scalar():
            return 0
        after = (await session.execute(text("SELECT outbox_position FROM segmentation_state WHERE id = 1"))).scalar()
        rows = (
            await session.execute(
                text(
                    "SELECT position, type, aggregateid FROM outbox WHERE position > :after "
                    "ORDER BY position LIMIT :batch"
                ),
                {"after": after, "batch": BATCH_EVENTS},
            )
        ).all()
        if not rows:
            return 0
        erased = {_customer_id(r.aggregateid) for r in rows if r.type == _ERASED}
        changed = {_customer_id(r.aggregateid) for r in rows if r.type not in _IGNORED_TYPES} - erased - {None}
        config, _ = await segment_store.load_config(session)
        threshold = await segment_store.vip_spend_threshold(session)
        for customer_id in sorted(changed):  # type: ignore[type-var]
            await evaluate_customer(session, customer_id, config, threshold)  # type: ignore[arg-type]
        for customer_id in erased - {None}:
            await segment_store.forget_customer(session, customer_id)  # type: ignore[arg-type]
        await session.execute(
            text("UPDATE segmentation_state SET outbox_position = :p WHERE id = 1"), {"p": rows[-1].position}
        )
        return len(rows)


async def evaluate_customer(
    session: AsyncSession,
    customer_id: uuid.UUID,
    config: segmentation.SegmentationConfig,
    vip_threshold: Decimal | None,
) -> None:
    """Re-evaluates one customer and announces a change of segments."""
    customer = await segment_store.customer_for_evaluation(session, customer_id)
    now = datetime.now(UTC)
    if customer is None:
        left = await segment_store.forget_customer(session, customer_id)
        await _announce(session, customer_id, [], left, 0.0)
        return
    if customer.erase_time is not None:
        # Nothing is evaluated or announced about an erased customer: even segment names tell where
        # they lived and how old they were.
        await segment_store.forget_customer(session, customer_id)
        return
    inputs = await segment_store.segment_inputs(session, customer, now.date())
    evaluation = segmentation.evaluate(inputs, config, vip_spend_threshold=vip_threshold, today=now.date())
    entered, left = await segment_store.store_evaluation(
        session, customer_id, evaluation, average_monthly_spend=inputs.average_monthly_spend, now=now
    )
    await _announce(session, customer_id, entered, left, evaluation.churn_risk_score)


async def rank_vip(database: Database) -> Decimal | None:
    """Recomputes the VIP spend threshold (the top `vip_top_share` of customers by average monthly
    spend) and moves customers into or out of value-vip accordingly. A periodic job, never on a
    request path."""
    async with database.transaction() as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _EVALUATOR_LOCK})
        config, _ = await segment_store.load_config(session)
        threshold = (
            await session.execute(
                text(
                    "SELECT percentile_disc(:q) WITHIN GROUP (ORDER BY average_monthly_spend) "
                    "FROM customer_scores WHERE average_monthly_spend > 0"
                ),
                {"q": 1 - config.vip_top_share},
            )
        ).scalar()
        await session.execute(
            text("UPDATE segmentation_state SET vip_spend_threshold = :t, rank_time = now() WHERE id = 1"),
            {"t": threshold},
        )
        evidence_sql = (
            "jsonb_build_array(jsonb_build_object('factor', 'average_monthly_spend', 'value', "
            "s.average_monthly_spend::text, 'threshold', v.t::text, 'contribution', 0), jsonb_build_object("
            "'factor', 'vip_top_share', 'value', v.share, 'threshold', '', 'contribution', 0))"
        )
        entered = await session.execute(
            text(
                "WITH v AS (SELECT CAST(:t AS numeric) AS t, CAST(:share AS text) AS share) "
                "INSERT INTO segment_memberships (customer_id, segment, rule, evidence, since) "
                f"SELECT s.customer_id, 'value-vip', 'value.top_share', {evidence_sql}, now() "
                "FROM customer_scores s, v WHERE v.t IS NOT NULL AND s.average_monthly_spend >= v.t "
                "AND s.average_monthly_spend > 0 "
                "ON CONFLICT (customer_id, segment) DO NOTHING RETURNING customer_id"
            ),
            {"t": threshold, "share": str(config.vip_top_share)},
        )
        entered_ids = [r.customer_id for r in entered]
        left = await session.execute(
            text(
                "WITH v AS (SELECT CAST(:t AS numeric) AS t) "
                "DELETE FROM segment_memberships m USING customer_scores s, v "
                "WHERE m.segment = 'value-vip' AND s.customer_id = m.customer_id "
                "AND (v.t IS NULL OR s.average_monthly_spend < v.t) RETURNING m.customer_id"
            ),
            {"t": threshold},
        )
        left_ids = [r.customer_id for r in left]
        await segment_store.adjust_counts(session, {"value-vip": len(entered_ids) - len(left_ids)})
        vip = segmentation.Membership("value-vip", "value.top_share")
        for customer_id in entered_ids:
            await _announce(session, customer_id, [vip], [], None)
        for customer_id in left_ids:
            await _announce(session, customer_id, [], ["value-vip"], None)
        return threshold


def segment_evaluator(
    database: Database, *, interval_seconds: float = 0.2, rank_interval_seconds: float = 300.0
) -> RepeatingTask:
    """Background task: evaluate new changes continuously, rank for VIP periodically."""
    next_rank = 0.0

    async def evaluate_and_rank() -> bool:
        nonlocal next_rank
        now = asyncio.get_running_loop().time()
        if now >= next_rank:
            await rank_vip(database)
            next_rank = now + rank_interval_seconds
        return await evaluate_pending(database) >= BATCH_EVENTS

    return RepeatingTask("segment-evaluator", evaluate_and_rank, interval_seconds)


async def _announce(
    session: AsyncSession,
    customer_id: uuid.UUID,
    entered: list[segmentation.Membership],
    left: list[str],
    churn_risk_score: float | None,
) -> None:
    if not entered and not left:
        return
    event = events_pb2.SegmentsChanged(
        customer=customer_name(customer_id),
        entered=[
            segments_pb2.SegmentMembership(
                segment=f"segments/{m.segment}",
                rule=m.rule,
                evidence=[
                    segments_pb2.Evidence(
                        factor=e.factor, value=e.value, threshold=e.threshold, contribution=e.contribution
                    )
                    for e in m.evidence
                ],
            )
            for m in entered
        ],
        left=[f"segments/{name}" for name in left],
        churn_risk_score=churn_risk_score or 0.0,
    )
    await append_event(session, aggregate_type="customer", aggregate_id=customer_name(customer_id), payload=event)


def _customer_id(aggregate_id: str) -> uuid.UUID | None:
    prefix, _, value = aggregate_id.partition("/")
    if prefix != "customers":
        return None
    try:
        return uuid.UUID(value.split("/")[0])
    except ValueError:
        return None
