"""Proto messages <-> the complaints domain, both ways; reading a request checks every field and
names each bad one."""

import re
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import cast

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.type import date_pb2, timeofday_pb2

from chassis.errors import InvalidArgument, Violations, invalid_field
from chassis.etags import etag
from chassis.names import CUSTOMER, SUBSCRIPTION
from chassis.wellknown import date_from_proto, date_to_proto, duration_to_proto, timestamp_to_proto
from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_pb2, departments_pb2
from services.complaints.business_time import (
    WEEKDAYS_NINE_TO_SIX,
    BusinessCalendar,
    OpeningPeriod,
)
from services.complaints.departments import Agent, Department
from services.complaints.lifecycle import DEFAULT_PAUSED_STATES, State
from services.complaints.resource_names import AGENT, COMPLAINT, DEPARTMENT, HISTORY_ENTRY, LOYALTY_ACCOUNT, NOTE
from services.complaints.routing import AssignmentPolicy, Queue, RoutingRule
from services.complaints.sla import DEFAULT_WARNING_SHARE, Priority, SlaClock, SlaPlan, SlaTarget
from services.complaints.tickets import (
    Attachment,
    Compensation,
    HistoryEntry,
    NewTicket,
    Note,
    RelatedEntity,
    RelatedParty,
    Ticket,
    TicketDetails,
    TicketView,
    check_details,
)

_TYPE = (complaint_pb2.ComplaintType, "COMPLAINT_TYPE_")
_CATEGORY = (complaint_pb2.ComplaintCategory, "COMPLAINT_CATEGORY_")
_CHANNEL = (common_pb2.Channel, "CHANNEL_")
_SEVERITY = (complaint_pb2.Severity, "SEVERITY_")
_PRIORITY = (complaint_pb2.Priority, "PRIORITY_")
_ROLE = (complaint_pb2.PartyRole, "PARTY_ROLE_")
_VISIBILITY = (complaint_pb2.NoteVisibility, "NOTE_VISIBILITY_")
_POLICY = (departments_pb2.AssignmentPolicy, "ASSIGNMENT_POLICY_")
_COMPENSATION = (complaint_pb2.CompensationState, "COMPENSATION_STATE_")
_HISTORY = (complaint_pb2.HistoryKind, "HISTORY_KIND_")
EnumSpec = tuple[EnumTypeWrapper, str]
AGENT_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def enum_text(spec: EnumSpec, value: int, field_path: str, violations: Violations, *, required: bool = True) -> str:
    """The domain's name of a proto enum value (`CHANNEL_CALL_CENTRE` -> `call_centre`); "" when unset
    and optional; records a violation when unset and required, or unknown."""
    enum_type, prefix = spec
    if value == 0:
        if required:
            violations.add(field_path, "is required")
        return ""
    if value not in enum_type.values():
        violations.add(field_path, f"has no value {value}")
        return ""
    return enum_type.Name(value).removeprefix(prefix).lower()


def enum_value(spec: EnumSpec, name: str) -> int:
    """The proto enum value of a domain name; 0 for ""."""
    enum_type, prefix = spec
    return enum_type.Value(prefix + name.upper()) if name else 0


def state_to_proto(state: State) -> complaint_pb2.ComplaintState:
    """The proto value of a state."""
    return cast(complaint_pb2.ComplaintState, complaint_pb2.ComplaintState.Value(f"COMPLAINT_STATE_{state.name}"))


def state_from_proto(value: int, field_path: str) -> State:
    """The state of a proto value; INVALID_ARGUMENT when unset or unknown."""
    if value == 0 or value not in complaint_pb2.ComplaintState.values():
        raise invalid_field(field_path, "must be a known state")
    return State[complaint_pb2.ComplaintState.Name(value).removeprefix("COMPLAINT_STATE_")]


def priority_from_proto(value: int, field_path: str, violations: Violations) -> Priority | None:
    """The priority of a proto value; None when unset."""
    name = enum_text(_PRIORITY, value, field_path, violations, required=False)
    return Priority(name) if name else None


def new_ticket_from_proto(complaint: complaint_pb2.Complaint) -> NewTicket:
    """A ticket to file; INVALID_ARGUMENT naming every bad field."""
    violations = Violations()
    customer_id = _customer_id(complaint.customer, violations)
    if complaint.line:
        try:
            line_customer = SUBSCRIPTION.parse_uuids(complaint.line, "complaint.line")[0]
            if customer_id is not None and line_customer != customer_id:
                violations.add("complaint.line", "must be a line of the complaint's customer")
        except InvalidArgument as error:
            violations.items.extend(error.violations)
    channel = enum_text(_CHANNEL, complaint.channel, "complaint.channel", violations)
    if channel == "retail_shop" and not complaint.retailer_id:
        violations.add("complaint.retailer_id", "is required for a ticket filed at a shop")
    if channel and channel != "retail_shop" and complaint.retailer_id:
        violations.add("complaint.retailer_id", "is only for tickets filed at a shop")
    new = NewTicket(
        customer_id=customer_id or uuid.UUID(int=0),
        line=complaint.line,
        type=enum_text(_TYPE, complaint.type, "complaint.type", violations),
        category=enum_text(_CATEGORY, complaint.category, "complaint.category", violations),
        channel=channel,
        retailer_id=complaint.retailer_id,
        priority=priority_from_proto(complaint.priority, "complaint.priority", violations),
        details=details_from_proto(complaint, violations),
    )
    check_details(new.details, violations)
    violations.raise_if_any()
    return new


def details_from_proto(complaint: complaint_pb2.Complaint, violations: Violations) -> TicketDetails:
    """The details a caller sets."""
    return TicketDetails(
        severity=enum_text(_SEVERITY, complaint.severity, "complaint.severity", violations, required=False) or "minor",
        description=complaint.description.strip(),
        contact=complaint.contact.strip(),
        related_parties=tuple(
            RelatedParty(
                p.id,
                enum_text(_ROLE, p.role, f"complaint.related_parties[{i}].role", violations),
                p.display_name,
            )
            for i, p in enumerate(complaint.related_parties)
        ),
        attachments=tuple(Attachment(a.uri, a.media_type, a.size_bytes) for a in complaint.attachments),
        related_entities=tuple(RelatedEntity(e.reference, e.entity_type) for e in complaint.related_entities),
        external_id=complaint.external_id.strip(),
    )


def _customer_id(name: str, violations: Violations) -> uuid.UUID | None:
    if not name:
        violations.add("complaint.customer", "is required")
        return None
    try:
        return CUSTOMER.parse_uuid(name, "complaint.customer")
    except InvalidArgument as error:
        violations.items.extend(error.violations)
        return None


def complaint_to_proto(view: TicketView, now: datetime) -> complaint_pb2.Complaint:
    """The ticket as callers see it, its SLA state as of `now`."""
    ticket, calendar = view.ticket, view.calendar
    details = ticket.details
    message = complaint_pb2.Complaint(
        name=COMPLAINT.format(ticket.id),
        customer=CUSTOMER.format(ticket.customer_id),
        line=ticket.line,
        type=enum_value(_TYPE, ticket.type),  # type: ignore[arg-type]
        category=enum_value(_CATEGORY, ticket.category),  # type: ignore[arg-type]
        description=details.description,
        channel=enum_value(_CHANNEL, ticket.channel),  # type: ignore[arg-type]
        retailer_id=ticket.retailer_id,
        severity=enum_value(_SEVERITY, details.severity),  # type: ignore[arg-type]
        priority=enum_value(_PRIORITY, ticket.priority.value),  # type: ignore[arg-type]
        related_parties=[
            complaint_pb2.RelatedParty(id=p.party_id, role=enum_value(_ROLE, p.role), display_name=p.display_name)  # type: ignore[arg-type]
            for p in details.related_parties
        ],
        attachments=[
            complaint_pb2.Attachment(uri=a.uri, media_type=a.media_type, size_bytes=a.size_bytes)
            for a in details.attachments
        ],
        related_entities=[
            complaint_pb2.RelatedEntity(reference=e.reference, entity_type=e.entity_type)
            for e in details.related_entities
        ],
        external_id=details.external_id,
        state=state_to_proto(ticket.state),
        department=DEPARTMENT.format(ticket.department),
        agent=AGENT.format(ticket.department, ticket.agent) if ticket.agent else "",
        queue=complaint_pb2.QUEUE_SENIOR if ticket.queue is Queue.SENIOR else complaint_pb2.QUEUE_STANDARD,
        sla=sla_to_proto(ticket, calendar, now),
        reopen_count=ticket.reopen_count,
        merged_into=COMPLAINT.format(ticket.merged_into) if ticket.merged_into else "",
        parent=COMPLAINT.format(ticket.parent_id) if ticket.parent_id else "",
        contact=details.contact,
        create_time=timestamp_to_proto(ticket.create_time),
        update_time=timestamp_to_proto(ticket.update_time),
        creator=ticket.creator,
        etag=etag(ticket.version),
        close_time=timestamp_to_proto(ticket.close_time),
    )
    if ticket.resolve_time is not None or ticket.resolution_code:
        message.resolution.CopyFrom(
            complaint_pb2.Resolution(
                text=ticket.resolution_text,
                code=ticket.resolution_code,
                compensation_points=ticket.compensation_points,
                resolver=ticket.resolver,
                resolve_time=timestamp_to_proto(ticket.resolve_time),
            )
        )
    if ticket.compensation is not None:
        message.compensation.CopyFrom(compensation_to_proto(ticket.compensation))
    if ticket.csat is not None:
        message.satisfaction.CopyFrom(
            complaint_pb2.Satisfaction(
                csat=ticket.csat,
                nps=ticket.nps or 0,
                comment=ticket.satisfaction_comment,
                record_time=timestamp_to_proto(ticket.satisfaction_time),
            )
        )
    return message


def sla_to_proto(ticket: Ticket, calendar: BusinessCalendar, now: datetime) -> complaint_pb2.SlaState:
    """The ticket's SLA state as of `now`."""
    clock = SlaClock(ticket.sla_counted, ticket.sla_running_since)
    elapsed = clock.elapsed(calendar, now)
    responded_at = ticket.first_response_time
    response_late = (responded_at or now) > ticket.first_response_due
    return complaint_pb2.SlaState(
        first_response_target=duration_to_proto(ticket.first_response_target),
        first_response_due_time=timestamp_to_proto(ticket.first_response_due),
        first_response_time=timestamp_to_proto(responded_at),
        first_response_breached=ticket.first_response_breached or response_late,
        resolution_target=duration_to_proto(ticket.resolution_target),
        elapsed=duration_to_proto(elapsed),
        remaining=duration_to_proto(max(ticket.resolution_target - elapsed, timedelta(0))),
        paused=clock.paused,
        resolution_due_time=timestamp_to_proto(clock.due(calendar, ticket.resolution_target)),
        resolution_breached=ticket.resolution_breached or elapsed >= ticket.resolution_target,
        warned=ticket.warned,
    )


def note_to_proto(note: Note) -> complaint_pb2.Note:
    """A note as callers see it."""
    return complaint_pb2.Note(
        name=NOTE.format(note.complaint_id, note.number),
        author=note.author,
        create_time=timestamp_to_proto(note.create_time),
        text=note.text,
        visibility=enum_value(_VISIBILITY, note.visibility),  # type: ignore[arg-type]
    )


def visibility_from_proto(value: int) -> str:
    """The visibility of a note; INVALID_ARGUMENT when unset or unknown."""
    violations = Violations()
    visibility = enum_text(_VISIBILITY, value, "note.visibility", violations)
    violations.raise_if_any()
    return visibility


def history_to_proto(entry: HistoryEntry) -> complaint_pb2.HistoryEntry:
    """A history entry as callers see it."""
    return complaint_pb2.HistoryEntry(
        name=HISTORY_ENTRY.format(entry.complaint_id, entry.number),
        kind=enum_value(_HISTORY, entry.kind),  # type: ignore[arg-type]
        from_state=state_to_proto(entry.from_state),
        to_state=state_to_proto(entry.to_state),
        reason=entry.reason,
        actor=entry.actor,
        change_time=timestamp_to_proto(entry.change_time),
        detail=entry.detail,
    )


def department_from_proto(message: departments_pb2.Department, department_id: str, version: int = 1) -> Department:
    """A department; the servicer checks it with `check_department`."""
    violations = Violations()
    calendar = message.calendar
    periods = tuple(
        OpeningPeriod(_weekday(hours.day), _minute(hours.open_time), _minute(hours.close_time))
        for hours in calendar.opening_hours
    )
    targets: dict[Priority, SlaTarget] = {}
    for index, target in enumerate(message.sla_targets):
        priority = priority_from_proto(target.priority, f"department.sla_targets[{index}].priority", violations)
        if priority is not None:
            targets[priority] = SlaTarget(
                timedelta(minutes=target.first_response_minutes), timedelta(minutes=target.resolution_minutes)
            )
    paused = (
        frozenset(state_from_proto(value, "department.paused_states") for value in message.paused_states)
        or DEFAULT_PAUSED_STATES
    )
    policy = enum_text(_POLICY, message.assignment_policy, "department.assignment_policy", violations, required=False)
    violations.raise_if_any()
    return Department(
        department_id=department_id,
        display_name=message.display_name.strip(),
        calendar=BusinessCalendar(
            time_zone=calendar.time_zone,
            opening_hours=periods or WEEKDAYS_NINE_TO_SIX,
            country_code=calendar.country_code.upper(),
            company_holidays=frozenset(_days(calendar.company_holidays, "department.calendar.company_holidays")),
            company_working_days=frozenset(
                _days(calendar.company_working_days, "department.calendar.company_working_days")
            ),
        ),
        plan=SlaPlan(
            targets=targets, paused_states=paused, warning_share=message.warning_share or DEFAULT_WARNING_SHARE
        ),
        assignment_policy=AssignmentPolicy(policy) if policy else AssignmentPolicy.ROUND_ROBIN,
        version=version,
    )


def department_to_proto(department: Department) -> departments_pb2.Department:
    """A department as callers see it."""
    calendar = department.calendar
    return departments_pb2.Department(
        name=DEPARTMENT.format(department.department_id),
        display_name=department.display_name,
        calendar=departments_pb2.BusinessCalendar(
            time_zone=calendar.time_zone,
            country_code=calendar.country_code,
            opening_hours=[
                departments_pb2.OpeningHours(
                    day=p.weekday + 1,  # type: ignore[arg-type]  # google.type.DayOfWeek counts Monday as 1
                    open_time=_time_of_day(p.opens),
                    close_time=_time_of_day(p.closes),
                )
                for p in sorted(calendar.opening_hours)
            ],
            company_holidays=[d for d in map(date_to_proto, sorted(calendar.company_holidays)) if d],
            company_working_days=[d for d in map(date_to_proto, sorted(calendar.company_working_days)) if d],
        ),
        sla_targets=[
            departments_pb2.SlaTarget(
                priority=enum_value(_PRIORITY, priority.value),  # type: ignore[arg-type]
                first_response_minutes=int(target.first_response.total_seconds() // 60),
                resolution_minutes=int(target.resolution.total_seconds() // 60),
            )
            for priority, target in sorted(
                department.plan.targets.items(), key=lambda item: list(Priority).index(item[0])
            )
        ],
        paused_states=sorted(state_to_proto(state) for state in department.plan.paused_states),
        warning_share=department.plan.warning_share,
        assignment_policy=enum_value(_POLICY, department.assignment_policy.value),  # type: ignore[arg-type]
        etag=etag(department.version),
    )


def agent_to_proto(agent: Agent) -> departments_pb2.Agent:
    """An agent as callers see it."""
    return departments_pb2.Agent(
        name=AGENT.format(agent.department_id, agent.agent_id),
        display_name=agent.display_name,
        available=agent.available,
        senior=agent.senior,
        open_complaints=agent.open_complaints,
    )


def rule_from_proto(message: departments_pb2.RoutingRule, rule_id: str) -> RoutingRule:
    """A routing rule; INVALID_ARGUMENT naming every bad field."""
    violations = Violations()
    category = enum_text(_CATEGORY, message.category, "routing_rule.category", violations, required=False)
    channel = enum_text(_CHANNEL, message.channel, "routing_rule.channel", violations, required=False)
    priority = priority_from_proto(message.priority, "routing_rule.priority", violations)
    if priority is None and not violations.items:
        violations.add("routing_rule.priority", "is required")
    department = ""
    try:
        department = DEPARTMENT.parse_slug(message.department, "routing_rule.department")
    except InvalidArgument as error:
        violations.items.extend(error.violations)
    violations.raise_if_any()
    return RoutingRule(
        rule_id=rule_id,
        department=department,
        priority=priority or Priority.MEDIUM,
        category=category,
        channel=channel,
        segment=message.segment,
        region=message.region.strip(),
    )


def rule_to_proto(rule: RoutingRule) -> departments_pb2.RoutingRule:
    """A routing rule as callers see it."""
    return departments_pb2.RoutingRule(
        name=f"routingRules/{rule.rule_id}",
        category=enum_value(_CATEGORY, rule.category),  # type: ignore[arg-type]
        channel=enum_value(_CHANNEL, rule.channel),  # type: ignore[arg-type]
        segment=rule.segment,
        region=rule.region,
        department=DEPARTMENT.format(rule.department),
        priority=enum_value(_PRIORITY, rule.priority.value),  # type: ignore[arg-type]
    )


def loyalty_account(customer_id: uuid.UUID) -> str:
    """The customer's loyalty account."""
    return LOYALTY_ACCOUNT.format(customer_id)


def _weekday(day: int) -> int:
    if not 1 <= day <= 7:
        raise invalid_field("department.calendar.opening_hours.day", "must be a weekday")
    return int(day) - 1


def _minute(value: timeofday_pb2.TimeOfDay) -> int:
    if not (0 <= value.hours <= 24 and 0 <= value.minutes < 60):
        raise invalid_field("department.calendar.opening_hours", "must hold times of day")
    minute = value.hours * 60 + value.minutes
    # 23:59:59 stands for the end of the day.
    return 24 * 60 if value.hours == 23 and value.minutes == 59 and value.seconds == 59 else minute


def _time_of_day(minute: int) -> timeofday_pb2.TimeOfDay:
    return timeofday_pb2.TimeOfDay(hours=minute // 60, minutes=minute % 60)


def _days(values: Iterable[date_pb2.Date], field_path: str) -> list[date]:
    days = []
    for value in values:
        day = date_from_proto(value, field_path)
        if day is not None:
            days.append(day)
    return days


def agent_from_proto(message: departments_pb2.Agent, department_id: str, agent_id: str) -> Agent:
    """An agent; INVALID_ARGUMENT naming every bad field."""
    violations = Violations()
    if not agent_id or AGENT_ID.fullmatch(agent_id) is None:
        violations.add("agent_id", "must be a lower-case slug")
    if not message.display_name.strip():
        violations.add("agent.display_name", "is required")
    violations.raise_if_any()
    return Agent(department_id, agent_id, message.display_name.strip(), message.available, message.senior)


def compensation_to_proto(paid: Compensation) -> complaint_pb2.Compensation:
    """A compensation as callers see it."""
    return complaint_pb2.Compensation(
        points=paid.points,
        state=enum_value(_COMPENSATION, paid.state),  # type: ignore[arg-type]
        ledger_entry=paid.ledger_entry,
        refusal_reason=paid.refusal_reason,
        refusal_message=paid.refusal_message,
        settle_time=timestamp_to_proto(paid.settle_time),
        attempts=paid.attempts,
    )


def channel_value(name: str) -> common_pb2.Channel:
    """The proto channel of a domain name."""
    return cast(common_pb2.Channel, common_pb2.Channel.Value(_CHANNEL[1] + name.upper()))


def category_value(name: str) -> complaint_pb2.ComplaintCategory:
    """The proto category of a domain name."""
    return cast(complaint_pb2.ComplaintCategory, complaint_pb2.ComplaintCategory.Value(_CATEGORY[1] + name.upper()))
