"""The service's scheduled work: SLA warnings and breaches announced once each, pending tickets
cancelled after the customer's silence, resolutions closed after it, compensations sent.

Each kind of work reads only the tickets due, through its own partial index, a batch at a time;
rows are locked and skipped by concurrent runs (SKIP LOCKED), and what was announced is recorded
on the ticket in the same transaction as its event, so several replicas running at once announce
each breach exactly once.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock
from chassis.database import Database
from crm.complaints.v1 import events_pb2
from services.complaints import complaints, mapping, store
from services.complaints.compensation import GoodwillSender
from services.complaints.complaints import Timeouts, next_sla_check
from services.complaints.lifecycle import Verb
from services.complaints.resource_names import COMPLAINT, DEPARTMENT
from services.complaints.sla import SlaClock

BATCH = 200
MAX_BATCHES = 50
# A ticket whose check came due with nothing to announce (its department's calendar changed) is
# looked at again this much later, so that the scan never spins on it.
_RECHECK = timedelta(minutes=1)


@dataclass(frozen=True)
class ScheduledWorkDone:
    """What one run did."""

    warnings: int = 0
    breaches: int = 0
    pending_cancelled: int = 0
    resolutions_closed: int = 0
    compensations_granted: int = 0
    compensations_refused: int = 0


async def run_scheduled_work(
    database: Database, clock: Clock, timeouts: Timeouts, goodwill: GoodwillSender
) -> ScheduledWorkDone:
    """Runs every kind of scheduled work once, at the clock's time."""
    warnings, breaches = await announce_sla_milestones(database, clock)
    cancelled = await _move_due(database, clock, "pending_deadline", Verb.EXPIRE_PENDING, timeouts)
    closed = await _move_due(database, clock, "silence_deadline", Verb.CLOSE_AFTER_SILENCE, timeouts)
    sent = await goodwill.send_due(database, clock)
    return ScheduledWorkDone(warnings, breaches, cancelled, closed, sent.granted, sent.refused)


async def announce_sla_milestones(database: Database, clock: Clock) -> tuple[int, int]:
    """Announces the warnings and breaches that came due; returns (warnings, breaches)."""
    warnings = breaches = 0
    for _ in range(MAX_BATCHES):
        now = clock.now()
        async with database.transaction() as session:
            due = await store.lock_due(session, "next_sla_check", now, BATCH)
            for complaint_id in due:
                warned, breached = await _announce_ticket(session, complaint_id, now)
                warnings, breaches = warnings + warned, breaches + breached
        if len(due) < BATCH:
            break
    return warnings, breaches


async def _announce_ticket(session: AsyncSession, complaint_id: uuid.UUID, now: datetime) -> tuple[int, int]:
    ticket = await store.lock_ticket(session, complaint_id)
    if ticket is None:
        return 0, 0
    calendar = (await complaints.get_ticket(session, ticket.id)).calendar
    elapsed = SlaClock(ticket.sla_counted, ticket.sla_running_since).elapsed(calendar, now)
    after = ticket
    events: list[events_pb2.ComplaintSlaBreached | events_pb2.ComplaintSlaWarning] = []
    breach_targets = []
    if not after.first_response_time and not after.first_response_breached and after.first_response_due <= now:
        after = replace(after, first_response_breached=True)
        breach_targets.append(events_pb2.SLA_TARGET_KIND_FIRST_RESPONSE)
    warned = 0
    if not after.warned and elapsed >= after.resolution_target * after.warning_share:
        after = replace(after, warned=True)
        warned = 1
    if not after.resolution_breached and elapsed >= after.resolution_target:
        after = replace(after, resolution_breached=True)
        breach_targets.append(events_pb2.SLA_TARGET_KIND_RESOLUTION)
    sla = mapping.sla_to_proto(after, calendar, now)
    name, department = COMPLAINT.format(ticket.id), DEPARTMENT.format(ticket.department)
    if warned:
        events.append(events_pb2.ComplaintSlaWarning(complaint=name, department=department, sla=sla))
    events.extend(
        events_pb2.ComplaintSlaBreached(complaint=name, department=department, target=target, sla=sla)
        for target in breach_targets
    )
    check = next_sla_check(after, calendar)
    if check is not None and check <= now and not events:
        check = now + _RECHECK
    after = replace(after, version=ticket.version + 1) if events else after
    await store.save_ticket(session, ticket, after, check)
    if events:
        await complaints.announce(session, ticket, list(events), now)
    return warned, len(breach_targets)


async def _move_due(database: Database, clock: Clock, column: str, verb: Verb, timeouts: Timeouts) -> int:
    moved = 0
    reason = {
        Verb.EXPIRE_PENDING: f"the customer did not answer in {timeouts.pending_business_days} business days",
        Verb.CLOSE_AFTER_SILENCE: "the customer did not answer the resolution",
    }[verb]
    for _ in range(MAX_BATCHES):
        now = clock.now()
        async with database.transaction() as session:
            due = await store.lock_due(session, column, now, BATCH)
            for complaint_id in due:
                await complaints.transition(
                    session, complaint_id, verb, reason, expected_version=None, timeouts=timeouts, now=now
                )
            moved += len(due)
        if len(due) < BATCH:
            break
    return moved
