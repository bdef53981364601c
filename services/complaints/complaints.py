"""The ticket use cases over a database session: filing, reading, changing details, moving through
the state table, resolving with compensation, merging, linking, assigning, notes and satisfaction.

Every change runs under the ticket's row lock, so two concurrent transitions of one ticket queue
up: the second sees the state the first left and is refused when the table does not allow it.
Each change writes its history entry (reason, actor) and its events in the same transaction.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.caller import current_caller
from chassis.errors import FailedPrecondition, etag_mismatch, invalid_field, not_found
from chassis.names import CUSTOMER
from chassis.outbox import NewEvent, append_events
from chassis.pagination import PageRequest
from crm.complaints.v1 import events_pb2
from services.complaints import mapping, store
from services.complaints.business_time import BusinessCalendar, add_business_days, add_business_time
from services.complaints.departments import DEFAULT_DEPARTMENT, Department
from services.complaints.lifecycle import FINAL_STATES, OPEN_STATES, State, Verb, is_open, next_state
from services.complaints.resource_names import AGENT, COMPLAINT, DEPARTMENT
from services.complaints.routing import Queue, RoutingFacts, choose_agent, route
from services.complaints.sla import Priority, SlaClock, SlaTarget, milestones
from services.complaints.tickets import (
    Compensation,
    NewTicket,
    Note,
    Ticket,
    TicketDetails,
    TicketView,
    require_satisfaction_allowed,
)

DEFAULT_PRIORITY = Priority.MEDIUM


@dataclass(frozen=True)
class Timeouts:
    """How long the customer's silence is waited out."""

    pending_business_days: int
    """A pending ticket is cancelled after this many business days without the customer's answer."""
    resolution_silence: timedelta
    """A resolved ticket is closed after this long without the customer accepting or rejecting it."""


@dataclass(frozen=True)
class CustomerFacts:
    """What the customer service says of the ticket's customer."""

    region: str


class History:
    """The kinds of history entries."""

    STATE_CHANGE = "state_change"
    ASSIGNMENT = "assignment"
    ESCALATION = "escalation"
    MERGE = "merge"
    LINK = "link"


def goodwill_request_id(complaint_id: uuid.UUID) -> str:
    """The request id of a complaint's goodwill credit: one per complaint, whatever retries it takes."""
    return f"complaint-{complaint_id}-goodwill"


async def file_ticket(
    session: AsyncSession, new: NewTicket, customer: CustomerFacts, *, creator: str, now: datetime
) -> TicketView:
    """Files a ticket: routed by the rules, assigned by the department's policy, its SLA started."""
    segments = await store.segments_of(session, new.customer_id)
    facts = RoutingFacts(new.category, new.channel, segments, customer.region)
    chosen = route(
        await store.routing_rules(session),
        facts,
        default_department=DEFAULT_DEPARTMENT,
        default_priority=DEFAULT_PRIORITY,
    )
    department = await _department(session, chosen.department)
    priority = new.priority or chosen.priority
    target = department.plan.target(priority)
    agent = await _assign_agent(session, department, chosen.queue, now)
    ticket = Ticket(
        id=uuid.uuid4(),
        customer_id=new.customer_id,
        line=new.line,
        type=new.type,
        category=new.category,
        channel=new.channel,
        retailer_id=new.retailer_id,
        priority=priority,
        details=new.details,
        state=State.ACKNOWLEDGED,
        department=department.department_id,
        agent=agent,
        queue=chosen.queue,
        resolution_text="",
        resolution_code="",
        resolver="",
        resolve_time=None,
        compensation_points=0,
        csat=None,
        nps=None,
        satisfaction_comment="",
        satisfaction_time=None,
        reopen_count=0,
        merged_into=None,
        parent_id=None,
        creator=creator,
        create_time=now,
        update_time=now,
        close_time=None,
        version=1,
        first_response_target=target.first_response,
        first_response_due=add_business_time(department.calendar, now, target.first_response),
        first_response_time=None,
        first_response_breached=False,
        resolution_target=target.resolution,
        warning_share=department.plan.warning_share,
        sla_counted=timedelta(0),
        sla_running_since=now if department.plan.clock_runs_in(State.ACKNOWLEDGED) else None,
        warned=False,
        resolution_breached=False,
        waited=False,
    )
    await store.insert_ticket(session, ticket, next_sla_check(ticket, department.calendar))
    detail = f"routed by routingRules/{chosen.rule_id}" if chosen.rule_id else "no routing rule matched"
    await store.add_history(
        session,
        ticket.id,
        kind=History.STATE_CHANGE,
        from_state=State.ACKNOWLEDGED,
        to_state=State.ACKNOWLEDGED,
        reason="filed",
        now=now,
        detail=detail,
    )
    view = TicketView(ticket, department.calendar)
    await announce(session, ticket, [events_pb2.ComplaintCreated(complaint=mapping.complaint_to_proto(view, now))], now)
    return view


async def get_ticket(session: AsyncSession, complaint_id: uuid.UUID) -> TicketView:
    """A ticket with its calendar; NOT_FOUND when there is none."""
    ticket = await store.get_ticket(session, complaint_id)
    if ticket is None:
        raise not_found("complaint", COMPLAINT.format(complaint_id))
    return TicketView(ticket, (await _department(session, ticket.department)).calendar)


async def list_tickets(session: AsyncSession, criteria: store.TicketFilter, page: PageRequest) -> list[TicketView]:
    """A page of tickets with their calendars."""
    tickets = await store.list_tickets(session, criteria, page)
    calendars: dict[str, BusinessCalendar] = {}
    for department_id in {ticket.department for ticket in tickets}:
        calendars[department_id] = (await _department(session, department_id)).calendar
    return [TicketView(ticket, calendars[ticket.department]) for ticket in tickets]


async def update_details(
    session: AsyncSession,
    complaint_id: uuid.UUID,
    details: TicketDetails,
    expected_version: int | None,
    now: datetime,
) -> TicketView:
    """Replaces a ticket's details (the servicer merged the masked fields into them)."""
    ticket, department = await _locked(session, complaint_id, expected_version)
    if ticket.state in FINAL_STATES:
        raise FailedPrecondition(
            "COMPLAINT_FINAL", f"a {ticket.state} ticket cannot change", {"state": ticket.state.value}
        )
    changed = replace(ticket, details=details, version=ticket.version + 1, update_time=now)
    await store.save_ticket(session, ticket, changed, next_sla_check(changed, department.calendar))
    return TicketView(changed, department.calendar)


async def locked_details(session: AsyncSession, complaint_id: uuid.UUID) -> TicketDetails:
    """The ticket's details as they stand, locked, for an update to merge its fields into."""
    ticket = await store.lock_ticket(session, complaint_id)
    if ticket is None:
        raise not_found("complaint", COMPLAINT.format(complaint_id))
    return ticket.details


async def transition(
    session: AsyncSession,
    complaint_id: uuid.UUID,
    verb: Verb,
    reason: str,
    *,
    expected_version: int | None,
    timeouts: Timeouts,
    now: datetime,
) -> TicketView:
    """Moves a ticket by `verb`; FAILED_PRECONDITION naming from and to when the table does not allow it."""
    ticket, department = await _locked(session, complaint_id, expected_version)
    moved = await _move(session, ticket, department, verb, reason, timeouts, now)
    return TicketView(moved, department.calendar)


async def resolve(
    session: AsyncSession,
    complaint_id: uuid.UUID,
    *,
    text: str,
    code: str,
    points: int,
    expected_version: int | None,
    timeouts: Timeouts,
    now: datetime,
) -> TicketView:
    """Resolves a ticket in progress; goodwill points become a pending compensation in this same
    transaction, which the compensation sender credits once afterwards."""
    ticket, department = await _locked(session, complaint_id, expected_version)
    if points and ticket.compensation is not None:
        raise FailedPrecondition(
            "COMPENSATION_EXISTS",
            "the ticket's goodwill was granted with an earlier resolution",
            {"complaint": COMPLAINT.format(complaint_id)},
        )
    from_state = ticket.state
    next_state(from_state, Verb.RESOLVE)
    resolved = replace(
        ticket,
        resolution_text=text,
        resolution_code=code,
        resolver=_actor(),
        resolve_time=now,
        compensation_points=ticket.compensation_points + points,
    )
    moved = await _move(session, resolved, department, Verb.RESOLVE, code, timeouts, now)
    if points:
        await store.insert_compensation(
            session,
            Compensation(
                complaint_id=ticket.id,
                customer_id=ticket.customer_id,
                points=points,
                request_id=goodwill_request_id(ticket.id),
                state="pending",
                attempts=0,
                ledger_entry="",
                refusal_reason="",
                refusal_message="",
                settle_time=None,
            ),
            now,
        )
        moved = (await store.get_ticket(session, ticket.id)) or moved
    return TicketView(moved, department.calendar)


async def merge(
    session: AsyncSession, duplicate_id: uuid.UUID, master_id: uuid.UUID, reason: str, *, now: datetime
) -> TicketView:
    """Merges a duplicate into its master: the duplicate ends merged and its notes follow."""
    if duplicate_id == master_id:
        raise invalid_field("master", "must name another ticket than the duplicate")
    locked = await store.lock_tickets(session, [duplicate_id, master_id])
    duplicate, master = locked.get(duplicate_id), locked.get(master_id)
    if duplicate is None:
        raise not_found("complaint", COMPLAINT.format(duplicate_id))
    if master is None:
        raise not_found("complaint", COMPLAINT.format(master_id))
    if duplicate.customer_id != master.customer_id:
        raise FailedPrecondition(
            "OTHER_CUSTOMER",
            "a duplicate merges only into a ticket of the same customer",
            {"master": COMPLAINT.format(master_id)},
        )
    if master.state in FINAL_STATES:
        raise FailedPrecondition(
            "MASTER_FINAL", f"the master is {master.state} and takes no duplicates", {"state": master.state.value}
        )
    department = await _department(session, duplicate.department)
    no_timeouts = Timeouts(0, timedelta(0))
    merged = replace(duplicate, merged_into=master.id)
    moved = await _move(
        session, merged, department, Verb.MERGE, reason, no_timeouts, now, detail=COMPLAINT.format(master_id)
    )
    copied = await store.copy_notes(session, duplicate.id, master.id)
    master_department = await _department(session, master.department)
    touched = replace(master, version=master.version + 1, update_time=now)
    await store.save_ticket(session, master, touched, next_sla_check(touched, master_department.calendar))
    await store.add_history(
        session,
        master.id,
        kind=History.MERGE,
        from_state=master.state,
        to_state=master.state,
        reason=reason,
        now=now,
        detail=f"{COMPLAINT.format(duplicate.id)} merged in with {copied} notes",
    )
    return TicketView(moved, department.calendar)


async def link(
    session: AsyncSession, child_id: uuid.UUID, parent_id: uuid.UUID, reason: str, *, now: datetime
) -> TicketView:
    """Links a ticket under a parent; FAILED_PRECONDITION LINK_CYCLE when the parent is below it."""
    if child_id == parent_id:
        raise invalid_field("parent", "must name another ticket")
    locked = await store.lock_tickets(session, [child_id, parent_id])
    child, parent = locked.get(child_id), locked.get(parent_id)
    if child is None:
        raise not_found("complaint", COMPLAINT.format(child_id))
    if parent is None:
        raise not_found("complaint", COMPLAINT.format(parent_id))
    if child_id in await store.parent_chain(session, parent_id):
        raise FailedPrecondition(
            "LINK_CYCLE", "the parent is linked below this ticket already", {"parent": COMPLAINT.format(parent_id)}
        )
    department = await _department(session, child.department)
    linked = replace(child, parent_id=parent_id, version=child.version + 1, update_time=now)
    await store.save_ticket(session, child, linked, next_sla_check(linked, department.calendar))
    for ticket, detail in (
        (child, f"child of {COMPLAINT.format(parent_id)}"),
        (parent, f"parent of {COMPLAINT.format(child_id)}"),
    ):
        await store.add_history(
            session,
            ticket.id,
            kind=History.LINK,
            from_state=ticket.state,
            to_state=ticket.state,
            reason=reason,
            now=now,
            detail=detail,
        )
    return TicketView(linked, department.calendar)


async def assign(
    session: AsyncSession,
    complaint_id: uuid.UUID,
    *,
    department_id: str,
    agent_id: str,
    reason: str,
    now: datetime,
) -> TicketView:
    """Moves an open ticket to another department or agent (picked by the policy when not named)."""
    ticket, _ = await _locked(session, complaint_id, None)
    _require_open(ticket)
    department = await _department(session, department_id or ticket.department)
    if agent_id:
        if await store.get_agent(session, department.department_id, agent_id) is None:
            raise not_found("agent", AGENT.format(department.department_id, agent_id))
        await store.lock_agent_loads(session, department.department_id)
        await store.take_ticket(session, department.department_id, agent_id, now)
        chosen = agent_id
    else:
        chosen = await _assign_agent(session, department, ticket.queue, now)
    if ticket.agent:
        await store.release_ticket(session, ticket.department, ticket.agent)
    moved = replace(
        ticket, department=department.department_id, agent=chosen, version=ticket.version + 1, update_time=now
    )
    await store.save_ticket(session, ticket, moved, next_sla_check(moved, department.calendar))
    detail = AGENT.format(department.department_id, chosen) if chosen else DEPARTMENT.format(department.department_id)
    await store.add_history(
        session,
        ticket.id,
        kind=History.ASSIGNMENT,
        from_state=ticket.state,
        to_state=ticket.state,
        reason=reason,
        now=now,
        detail=detail,
    )
    return TicketView(moved, department.calendar)


async def escalate(session: AsyncSession, complaint_id: uuid.UUID, reason: str, *, now: datetime) -> TicketView:
    """Raises an open ticket's priority by one and moves it to the senior queue; its targets follow."""
    ticket, department = await _locked(session, complaint_id, None)
    _require_open(ticket)
    priority = ticket.priority.raised()
    target = department.plan.target(priority)
    first_response_due = ticket.first_response_due
    if ticket.first_response_time is None:
        first_response_due = add_business_time(department.calendar, ticket.create_time, target.first_response)
    moved = replace(
        ticket,
        priority=priority,
        queue=Queue.SENIOR,
        first_response_target=target.first_response,
        first_response_due=first_response_due,
        resolution_target=target.resolution,
        version=ticket.version + 1,
        update_time=now,
    )
    await store.save_ticket(session, ticket, moved, next_sla_check(moved, department.calendar))
    await store.add_history(
        session,
        ticket.id,
        kind=History.ESCALATION,
        from_state=ticket.state,
        to_state=ticket.state,
        reason=reason,
        now=now,
        detail=f"priority {priority}",
    )
    return TicketView(moved, department.calendar)


async def add_note(
    session: AsyncSession, complaint_id: uuid.UUID, text: str, visibility: str, *, now: datetime
) -> Note:
    """Adds a note by the current caller."""
    if await store.lock_ticket(session, complaint_id) is None:
        raise not_found("complaint", COMPLAINT.format(complaint_id))
    return await store.add_note(session, complaint_id, author=_actor(), text_=text, visibility=visibility, now=now)


async def record_satisfaction(
    session: AsyncSession, complaint_id: uuid.UUID, csat: int, nps: int, comment: str, *, now: datetime
) -> TicketView:
    """Records the customer's one satisfaction answer of a closed ticket."""
    ticket, department = await _locked(session, complaint_id, None)
    require_satisfaction_allowed(ticket)
    answered = replace(
        ticket,
        csat=csat,
        nps=nps,
        satisfaction_comment=comment,
        satisfaction_time=now,
        version=ticket.version + 1,
        update_time=now,
    )
    await store.save_ticket(session, ticket, answered, next_sla_check(answered, department.calendar))
    return TicketView(answered, department.calendar)


async def announce(session: AsyncSession, ticket: Ticket, payloads: list[Message], now: datetime) -> None:
    """Appends events about a ticket to the outbox under the ticket's own aggregate, so that a feed
    keyed by aggregate keeps each ticket's events in order (a customer's erasure finds them through
    the customer's tickets)."""
    aggregate = COMPLAINT.format(ticket.id)
    await append_events(
        session, [NewEvent(AggregateType.COMPLAINT, aggregate, payload) for payload in payloads], now=now
    )


def next_sla_check(ticket: Ticket, calendar: BusinessCalendar) -> datetime | None:
    """When the SLA scan must look at the ticket next; None while nothing is due."""
    if ticket.state not in OPEN_STATES:
        return None
    clock = SlaClock(ticket.sla_counted, ticket.sla_running_since)
    ahead = milestones(
        calendar,
        clock,
        SlaTarget(ticket.first_response_target, ticket.resolution_target),
        ticket.warning_share,
        first_response_due=ticket.first_response_due,
        responded=ticket.first_response_time is not None,
        response_breach_announced=ticket.first_response_breached,
        warned=ticket.warned,
        resolution_breach_announced=ticket.resolution_breached,
    )
    return ahead.next_check


async def _move(
    session: AsyncSession,
    ticket: Ticket,
    department: Department,
    verb: Verb,
    reason: str,
    timeouts: Timeouts,
    now: datetime,
    *,
    detail: str = "",
) -> Ticket:
    """Applies one move of the table to a locked ticket: clock, deadlines, agent load, history, events."""
    after_state = next_state(ticket.state, verb)
    calendar = department.calendar
    clock = SlaClock(ticket.sla_counted, ticket.sla_running_since).follow(calendar, department.plan, after_state, now)
    moved = replace(
        ticket,
        state=after_state,
        sla_counted=clock.counted,
        sla_running_since=clock.running_since,
        version=ticket.version + 1,
        update_time=now,
        pending_deadline=None,
        silence_deadline=None,
    )
    if verb is Verb.START and moved.first_response_time is None:
        moved = replace(moved, first_response_time=now)
    if after_state is State.PENDING:
        moved = replace(
            moved, waited=True, pending_deadline=add_business_days(calendar, now, timeouts.pending_business_days)
        )
    elif after_state is State.HELD:
        moved = replace(moved, waited=True)
    elif after_state is State.RESOLVED:
        moved = replace(moved, silence_deadline=now + timeouts.resolution_silence)
    elif verb is Verb.REOPEN:
        moved = replace(moved, reopen_count=ticket.reopen_count + 1, resolve_time=None)
    if after_state in FINAL_STATES:
        moved = replace(moved, close_time=now)
    if ticket.agent and is_open(ticket.state) and not is_open(after_state):
        await store.release_ticket(session, ticket.department, ticket.agent)
    elif ticket.agent and not is_open(ticket.state) and is_open(after_state):
        await store.take_ticket(session, ticket.department, ticket.agent, now)
    await store.save_ticket(session, ticket, moved, next_sla_check(moved, calendar))
    if after_state is State.RESOLVED:
        await store.set_resolution_business_time(session, ticket.id, clock.counted)
    kind = History.MERGE if verb is Verb.MERGE else History.STATE_CHANGE
    await store.add_history(
        session,
        ticket.id,
        kind=kind,
        from_state=ticket.state,
        to_state=after_state,
        reason=reason,
        now=now,
        detail=detail,
    )
    changed = events_pb2.ComplaintStateChanged(
        complaint=COMPLAINT.format(ticket.id),
        customer=CUSTOMER.format(ticket.customer_id),
        from_state=mapping.state_to_proto(ticket.state),
        to_state=mapping.state_to_proto(after_state),
        reason=reason,
    )
    await announce(session, ticket, [changed], now)
    return moved


async def _locked(
    session: AsyncSession, complaint_id: uuid.UUID, expected_version: int | None
) -> tuple[Ticket, Department]:
    ticket = await store.lock_ticket(session, complaint_id)
    if ticket is None:
        raise not_found("complaint", COMPLAINT.format(complaint_id))
    if expected_version is not None and expected_version != ticket.version:
        raise etag_mismatch(COMPLAINT.format(complaint_id))
    return ticket, await _department(session, ticket.department)


async def _department(session: AsyncSession, department_id: str) -> Department:
    department = await store.get_department(session, department_id)
    if department is None:
        raise not_found("department", DEPARTMENT.format(department_id))
    return department


async def _assign_agent(session: AsyncSession, department: Department, queue: Queue, now: datetime) -> str:
    """Picks and charges the department's agent for a ticket of `queue`; "" when none is available."""
    agents = await store.lock_agent_loads(session, department.department_id)
    chosen = choose_agent(agents, department.assignment_policy, queue)
    if chosen is None:
        return ""
    await store.take_ticket(session, department.department_id, chosen, now)
    return chosen


def _require_open(ticket: Ticket) -> None:
    if not is_open(ticket.state):
        raise FailedPrecondition(
            "COMPLAINT_NOT_OPEN", f"a {ticket.state} ticket is not worked any more", {"state": ticket.state.value}
        )


def _actor() -> str:
    return current_caller().subject
