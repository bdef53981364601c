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
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.background import RepeatingTask
from chassis.clock import Clock
from chassis.database import Database
from chassis.errors import InvalidArgument
from chassis.names import CUSTOMER
from crm.customer.v1 import events_pb2
from services.customer.announcements import announce
from services.customer.customers.lookup import lock_customer_if_present
from services.customer.segments import store
from services.customer.segments.config import SegmentationConfig
from services.customer.segments.inputs import segment_inputs
from services.customer.segments.mapping import segments_changed_event
from services.customer.segments.rules import Membership, evaluate, membership_change
from services.customer.segments.use_cases import forget_customer_segments

BATCH_EVENTS = 500
_IGNORED_TYPES = (events_pb2.SegmentsChanged.DESCRIPTOR.full_name,)
_ERASED = events_pb2.CustomerErased.DESCRIPTOR.full_name
_VIP = "value-vip"


async def evaluate_pending(database: Database, clock: Clock) -> int:
    """Evaluates the customers of outbox events not yet seen; returns how many events were read."""
    async with database.transaction() as session:
        if not await store.try_lock_evaluator(session):
            return 0
        events = await store.events_after(session, BATCH_EVENTS)
        if not events:
            return 0
        erased = _customers_named(e for e in events if e.type == _ERASED)
        changed = _customers_named(e for e in events if e.type not in _IGNORED_TYPES) - erased
        config, _ = await store.load_config(session)
        threshold = await store.vip_spend_threshold(session)
        now = clock.now()
        for customer_id in sorted(changed):
            await evaluate_customer(session, customer_id, config, threshold, now)
        for customer_id in erased:
            await forget_customer_segments(session, customer_id)
        await store.save_evaluated_position(session, events[-1].position)
        return len(events)


async def evaluate_customer(
    session: AsyncSession,
    customer_id: uuid.UUID,
    config: SegmentationConfig,
    vip_threshold: Decimal | None,
    now: datetime,
) -> None:
    """Re-evaluates one customer as of `now` and announces a change of segments."""
    customer = await lock_customer_if_present(session, customer_id)
    if customer is None:
        left = await forget_customer_segments(session, customer_id)
        await _announce(session, customer_id, [], left, 0.0, now)
        return
    if customer.erase_time is not None:
        # Nothing is evaluated or announced about an erased customer: even segment names tell where
        # they lived and how old they were.
        await forget_customer_segments(session, customer_id)
        return
    inputs = await segment_inputs(session, customer, now.date())
    evaluation = evaluate(inputs, config, vip_spend_threshold=vip_threshold, today=now.date())
    change = membership_change([m.segment for m in await store.memberships(session, customer_id)], evaluation)
    await store.save_memberships(session, customer_id, evaluation.memberships, now)
    await store.delete_memberships(session, customer_id, change.left)
    await store.adjust_counts(session, change.count_changes)
    await store.save_score(
        session, customer_id, evaluation, average_monthly_spend=inputs.average_monthly_spend, now=now
    )
    await _announce(session, customer_id, change.entered, change.left, evaluation.churn_risk_score, now)


async def rank_vip(database: Database, clock: Clock) -> Decimal | None:
    """Recomputes the VIP spend threshold (the top `vip_top_share` of customers by average monthly
    spend) and moves customers into or out of value-vip accordingly. A periodic job, never on a
    request path."""
    async with database.transaction() as session:
        await store.lock_evaluator(session)
        config, _ = await store.load_config(session)
        now = clock.now()
        threshold = await store.spend_at_share(session, config.vip_top_share)
        await store.save_vip_spend_threshold(session, threshold, now)
        entered = await store.add_vip_members(session, threshold, config.vip_top_share, now)
        left = await store.remove_vip_members(session, threshold)
        await store.adjust_counts(session, {_VIP: len(entered) - len(left)})
        vip = Membership(_VIP, "value.top_share")
        for customer_id in entered:
            await _announce(session, customer_id, [vip], [], None, now)
        for customer_id in left:
            await _announce(session, customer_id, [], [_VIP], None, now)
        return threshold


def segment_evaluator(
    database: Database, clock: Clock, *, interval_seconds: float = 0.2, rank_interval_seconds: float = 300.0
) -> RepeatingTask:
    """Background task: evaluate new changes continuously, rank for VIP periodically."""
    next_rank = 0.0

    async def evaluate_and_rank() -> bool:
        nonlocal next_rank
        # The loop's monotonic time paces the ranking; business time comes from `clock`.
        loop_time = asyncio.get_running_loop().time()
        if loop_time >= next_rank:
            await rank_vip(database, clock)
            next_rank = loop_time + rank_interval_seconds
        return await evaluate_pending(database, clock) >= BATCH_EVENTS

    return RepeatingTask("segment-evaluator", evaluate_and_rank, interval_seconds)


async def _announce(
    session: AsyncSession,
    customer_id: uuid.UUID,
    entered: Sequence[Membership],
    left: Sequence[str],
    churn_risk_score: float | None,
    now: datetime,
) -> None:
    if entered or left:
        await announce(session, customer_id, segments_changed_event(customer_id, entered, left, churn_risk_score), now)


def _customers_named(events: Iterable[store.OutboxEntry]) -> set[uuid.UUID]:
    """The customers the events are about (an aggregate that is not a customer names none)."""
    customers = set()
    for event in events:
        try:
            customers.add(CUSTOMER.parse_uuid(event.aggregate_id, "aggregateid"))
        except InvalidArgument:
            continue
    return customers
