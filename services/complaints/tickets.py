"""Tickets as the domain sees them: what a new ticket must hold, and the rules of its fields.

Values are validated before anything is written, every bad field named at once.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chassis.errors import FailedPrecondition, Violations
from services.complaints.business_time import BusinessCalendar
from services.complaints.lifecycle import State
from services.complaints.routing import Queue
from services.complaints.sla import Priority

MAX_DESCRIPTION = 4000
MAX_NOTE = 4000
MAX_COMMENT = 2000
MAX_REASON = 1000
MAX_REPEATED = 20
MAX_SHORT_TEXT = 200


@dataclass(frozen=True)
class RelatedParty:
    """A party involved besides the customer."""

    party_id: str
    role: str
    display_name: str


@dataclass(frozen=True)
class Attachment:
    """A file attached by reference."""

    uri: str
    media_type: str
    size_bytes: int


@dataclass(frozen=True)
class RelatedEntity:
    """A business object the ticket concerns."""

    reference: str
    entity_type: str


@dataclass(frozen=True)
class TicketDetails:
    """The fields a caller sets on a ticket, at filing or later with UpdateComplaint."""

    severity: str = "minor"
    description: str = ""
    contact: str = ""
    related_parties: tuple[RelatedParty, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    related_entities: tuple[RelatedEntity, ...] = ()
    external_id: str = ""


@dataclass(frozen=True)
class NewTicket:
    """A ticket to file."""

    customer_id: uuid.UUID
    line: str
    type: str
    category: str
    channel: str
    retailer_id: str
    priority: Priority | None
    """None lets routing decide."""
    details: TicketDetails


@dataclass(frozen=True)
class Ticket:
    """A ticket as stored."""

    id: uuid.UUID
    customer_id: uuid.UUID
    line: str
    type: str
    category: str
    channel: str
    retailer_id: str
    priority: Priority
    details: TicketDetails
    state: State
    department: str
    agent: str
    queue: Queue
    resolution_text: str
    resolution_code: str
    resolver: str
    resolve_time: datetime | None
    compensation_points: int
    csat: int | None
    nps: int | None
    satisfaction_comment: str
    satisfaction_time: datetime | None
    reopen_count: int
    merged_into: uuid.UUID | None
    parent_id: uuid.UUID | None
    creator: str
    create_time: datetime
    update_time: datetime
    close_time: datetime | None
    version: int
    first_response_target: timedelta
    first_response_due: datetime
    first_response_time: datetime | None
    first_response_breached: bool
    resolution_target: timedelta
    warning_share: float
    sla_counted: timedelta
    sla_running_since: datetime | None
    warned: bool
    resolution_breached: bool
    waited: bool
    """Whether it ever waited on the customer or a third party (not a first-contact resolution)."""
    pending_deadline: datetime | None = None
    """When a pending ticket is cancelled for the customer's silence."""
    silence_deadline: datetime | None = None
    """When a resolved ticket is closed for the customer's silence."""
    compensation: "Compensation | None" = field(default=None)


@dataclass(frozen=True)
class Compensation:
    """A goodwill credit owed for a resolution."""

    complaint_id: uuid.UUID
    customer_id: uuid.UUID
    points: int
    request_id: str
    state: str
    attempts: int
    ledger_entry: str
    refusal_reason: str
    refusal_message: str
    settle_time: datetime | None


@dataclass(frozen=True)
class Note:
    """A note on a ticket."""

    complaint_id: uuid.UUID
    number: int
    author: str
    text: str
    visibility: str
    create_time: datetime


@dataclass(frozen=True)
class HistoryEntry:
    """One change of a ticket."""

    complaint_id: uuid.UUID
    number: int
    kind: str
    from_state: State
    to_state: State
    reason: str
    actor: str
    change_time: datetime
    detail: str


def check_details(details: TicketDetails, violations: Violations, prefix: str = "complaint") -> None:
    """Records every bad field of `details`."""
    description = details.description.strip()
    if not description:
        violations.add(f"{prefix}.description", "is required")
    elif len(description) > MAX_DESCRIPTION:
        violations.add(f"{prefix}.description", f"must be at most {MAX_DESCRIPTION} characters")
    if len(details.contact) > MAX_SHORT_TEXT:
        violations.add(f"{prefix}.contact", f"must be at most {MAX_SHORT_TEXT} characters")
    if len(details.external_id) > MAX_SHORT_TEXT:
        violations.add(f"{prefix}.external_id", f"must be at most {MAX_SHORT_TEXT} characters")
    for repeated, values in (
        ("related_parties", details.related_parties),
        ("attachments", details.attachments),
        ("related_entities", details.related_entities),
    ):
        if len(values) > MAX_REPEATED:
            violations.add(f"{prefix}.{repeated}", f"must hold at most {MAX_REPEATED} items")
    for index, party in enumerate(details.related_parties):
        if not party.party_id:
            violations.add(f"{prefix}.related_parties[{index}].id", "is required")
    for index, attachment in enumerate(details.attachments):
        if "://" not in attachment.uri or len(attachment.uri) > 2000:
            violations.add(f"{prefix}.attachments[{index}].uri", "must be an absolute URI")
        if attachment.size_bytes < 0:
            violations.add(f"{prefix}.attachments[{index}].size_bytes", "must not be negative")
    for index, entity in enumerate(details.related_entities):
        if not entity.reference:
            violations.add(f"{prefix}.related_entities[{index}].reference", "is required")


def check_text(violations: Violations, field_path: str, value: str, limit: int, *, required: bool) -> None:
    """Records a missing or too long text."""
    if required and not value.strip():
        violations.add(field_path, "is required")
    elif len(value) > limit:
        violations.add(field_path, f"must be at most {limit} characters")


def check_satisfaction(csat: int, nps: int, comment: str) -> None:
    """INVALID_ARGUMENT naming each answer out of its scale."""
    violations = Violations()
    if not 1 <= csat <= 5:
        violations.add("satisfaction.csat", "must be between 1 and 5")
    if not 0 <= nps <= 10:
        violations.add("satisfaction.nps", "must be between 0 and 10")
    check_text(violations, "satisfaction.comment", comment, MAX_COMMENT, required=False)
    violations.raise_if_any()


def require_satisfaction_allowed(ticket: Ticket) -> None:
    """Satisfaction is asked once, after closing."""
    if ticket.state is not State.CLOSED:
        raise FailedPrecondition(
            "NOT_CLOSED", "satisfaction is recorded once the ticket is closed", {"state": ticket.state.value}
        )
    if ticket.csat is not None:
        raise FailedPrecondition("ALREADY_ANSWERED", "the customer answered for this ticket already")


@dataclass(frozen=True)
class TicketView:
    """A ticket with the calendar of its department, on which its SLA is counted."""

    ticket: Ticket
    calendar: BusinessCalendar
