"""The complaints database: tickets with their notes and history, departments and agents, routing
rules, customers' segments and pending compensations. Every ticket query is keyed by the ticket,
the customer or an index of the scans; changes to a ticket run under its row lock."""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Column, MetaData, Row, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.database import rows_affected
from chassis.errors import Aborted
from chassis.idempotency import idempotency_table
from chassis.pagination import PageRequest
from services.complaints.business_time import BusinessCalendar, OpeningPeriod
from services.complaints.departments import Agent, Department
from services.complaints.lifecycle import State
from services.complaints.routing import AgentLoad, AssignmentPolicy, Queue, RoutingRule
from services.complaints.sla import Priority, SlaPlan, SlaTarget
from services.complaints.tickets import (
    Attachment,
    Compensation,
    HistoryEntry,
    Note,
    RelatedEntity,
    RelatedParty,
    Ticket,
    TicketDetails,
)

metadata = MetaData()
idempotency_keys = idempotency_table(metadata)
# Which customer a stored answer is about, so that erasure finds the answers holding their words.
idempotency_keys.append_column(Column("customer_id", UUID(as_uuid=True)))

MAX_ROUTING_RULES = 1000
"""Rules read at once to route a ticket; the operator keeps a few dozen."""


@dataclass(frozen=True)
class TicketFilter:
    """The criteria of ListComplaints."""

    customer_id: uuid.UUID | None
    state: State | None
    department: str
    breached_only: bool


# --- tickets -------------------------------------------------------------------------------------

_TICKET_COLUMNS = (
    "customer_id, line, type, category, description, channel, retailer_id, severity, priority, "
    "related_parties, attachments, related_entities, external_id, contact, state, department_id, agent_id, "
    "queue, resolution_text, resolution_code, resolver, resolve_time, compensation_points, csat, nps, "
    "satisfaction_comment, satisfaction_time, reopen_count, waited, merged_into, parent_id, creator, "
    "create_time, update_time, close_time, version, first_response_target, first_response_due, "
    "first_response_time, first_response_breached, resolution_target, warning_share, sla_counted, "
    "sla_running_since, warned, resolution_breached, next_sla_check, pending_deadline, silence_deadline"
)
_JSON_COLUMNS = ("related_parties", "attachments", "related_entities")


def _ticket_values(ticket: Ticket, next_sla_check: datetime | None) -> dict[str, Any]:
    details = ticket.details
    return {
        "id": ticket.id,
        "customer_id": ticket.customer_id,
        "line": ticket.line,
        "type": ticket.type,
        "category": ticket.category,
        "description": details.description,
        "channel": ticket.channel,
        "retailer_id": ticket.retailer_id,
        "severity": details.severity,
        "priority": ticket.priority.value,
        "related_parties": json.dumps([[p.party_id, p.role, p.display_name] for p in details.related_parties]),
        "attachments": json.dumps([[a.uri, a.media_type, a.size_bytes] for a in details.attachments]),
        "related_entities": json.dumps([[e.reference, e.entity_type] for e in details.related_entities]),
        "external_id": details.external_id,
        "contact": details.contact,
        "state": ticket.state.value,
        "department_id": ticket.department,
        "agent_id": ticket.agent,
        "queue": ticket.queue.value,
        "resolution_text": ticket.resolution_text,
        "resolution_code": ticket.resolution_code,
        "resolver": ticket.resolver,
        "resolve_time": ticket.resolve_time,
        "compensation_points": ticket.compensation_points,
        "csat": ticket.csat,
        "nps": ticket.nps,
        "satisfaction_comment": ticket.satisfaction_comment,
        "satisfaction_time": ticket.satisfaction_time,
        "reopen_count": ticket.reopen_count,
        "waited": ticket.waited,
        "merged_into": ticket.merged_into,
        "parent_id": ticket.parent_id,
        "creator": ticket.creator,
        "create_time": ticket.create_time,
        "update_time": ticket.update_time,
        "close_time": ticket.close_time,
        "version": ticket.version,
        "first_response_target": ticket.first_response_target,
        "first_response_due": ticket.first_response_due,
        "first_response_time": ticket.first_response_time,
        "first_response_breached": ticket.first_response_breached,
        "resolution_target": ticket.resolution_target,
        "warning_share": ticket.warning_share,
        "sla_counted": ticket.sla_counted,
        "sla_running_since": ticket.sla_running_since,
        "warned": ticket.warned,
        "resolution_breached": ticket.resolution_breached,
        "next_sla_check": next_sla_check,
        "pending_deadline": ticket.pending_deadline,
        "silence_deadline": ticket.silence_deadline,
    }


def _placeholder(column: str) -> str:
    return f"CAST(:{column} AS jsonb)" if column in _JSON_COLUMNS else f":{column}"


async def insert_ticket(session: AsyncSession, ticket: Ticket, next_sla_check: datetime | None) -> None:
    """Writes a new ticket; the SLA scan looks at it again at `next_sla_check`."""
    columns = _TICKET_COLUMNS.split(", ")
    await session.execute(
        text(
            f"INSERT INTO complaints (id, {_TICKET_COLUMNS}) "
            f"VALUES (:id, {', '.join(_placeholder(column) for column in columns)})"
        ),
        _ticket_values(ticket, next_sla_check),
    )


async def save_ticket(session: AsyncSession, before: Ticket, after: Ticket, next_sla_check: datetime | None) -> None:
    """Writes the locked ticket's new state; the version read under the lock guards it."""
    columns = [column for column in _TICKET_COLUMNS.split(", ") if column not in ("customer_id", "creator")]
    assignments = ", ".join(f"{column} = {_placeholder(column)}" for column in columns)
    values = _ticket_values(after, next_sla_check)
    values["expected_version"] = before.version
    result = await session.execute(
        text(f"UPDATE complaints SET {assignments} WHERE id = :id AND version = :expected_version"),
        values,
    )
    if rows_affected(result) != 1:
        # Only possible if the ticket changed without its lock being held: refuse rather than guess.
        raise Aborted("COMPLAINT_CHANGED", "the ticket changed concurrently; retry the request")


async def set_resolution_business_time(session: AsyncSession, complaint_id: uuid.UUID, elapsed: timedelta) -> None:
    """Keeps the business time a ticket took to its resolution, for the figures."""
    await session.execute(
        text("UPDATE complaints SET resolution_business_time = :elapsed WHERE id = :id"),
        {"id": complaint_id, "elapsed": elapsed},
    )


async def get_ticket(session: AsyncSession, complaint_id: uuid.UUID) -> Ticket | None:
    """A ticket with its compensation, as it stands."""
    row = (await session.execute(text(_SELECT_TICKET + " WHERE c.id = :id"), {"id": complaint_id})).first()
    return _ticket(row) if row else None


async def lock_ticket(session: AsyncSession, complaint_id: uuid.UUID) -> Ticket | None:
    """A ticket, locked until the transaction ends: changes of one ticket queue up behind each other."""
    row = (
        await session.execute(text(_SELECT_TICKET + " WHERE c.id = :id FOR UPDATE OF c"), {"id": complaint_id})
    ).first()
    return _ticket(row) if row else None


async def lock_tickets(session: AsyncSession, complaint_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Ticket]:
    """Several tickets locked in the order of their ids, so that two callers locking the same pair
    cannot deadlock."""
    rows = await session.execute(
        text(_SELECT_TICKET + " WHERE c.id = ANY(:ids) ORDER BY c.id FOR UPDATE OF c"), {"ids": list(complaint_ids)}
    )
    return {ticket.id: ticket for ticket in map(_ticket, rows)}


async def list_tickets(session: AsyncSession, criteria: TicketFilter, page: PageRequest) -> list[Ticket]:
    """Tickets newest first after the page's key, read through the index of the most selective filter."""
    conditions: list[str] = []
    values: dict[str, object] = {"limit": page.fetch_size}
    if criteria.customer_id is not None:
        conditions.append("c.customer_id = :customer_id")
        values["customer_id"] = criteria.customer_id
    if criteria.state is not None:
        conditions.append("c.state = :state")
        values["state"] = criteria.state.value
    if criteria.department:
        conditions.append("c.department_id = :department")
        values["department"] = criteria.department
    if criteria.breached_only:
        conditions.append("c.resolution_breached")
    if page.after:
        conditions.append("(c.create_time, c.id) < (CAST(:after_time AS timestamptz), CAST(:after_id AS uuid))")
        values["after_time"] = datetime.fromisoformat(str(page.after[0]))
        values["after_id"] = uuid.UUID(str(page.after[1]))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = await session.execute(
        text(f"{_SELECT_TICKET}{where} ORDER BY c.create_time DESC, c.id DESC LIMIT :limit"), values
    )
    return [_ticket(row) for row in rows]


async def complaint_ids_of(session: AsyncSession, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """Every ticket of a customer (through the index by customer), for erasure."""
    rows = await session.execute(text("SELECT id FROM complaints WHERE customer_id = :c"), {"c": customer_id})
    return [row.id for row in rows]


async def child_ids(session: AsyncSession, parent_id: uuid.UUID) -> list[uuid.UUID]:
    """The tickets linked below a ticket."""
    rows = await session.execute(text("SELECT id FROM complaints WHERE parent_id = :id"), {"id": parent_id})
    return [row.id for row in rows]


async def parent_chain(session: AsyncSession, complaint_id: uuid.UUID, limit: int = 100) -> list[uuid.UUID]:
    """The ticket's parent, its parent's parent and so on (at most `limit`), to refuse a cycle."""
    rows = await session.execute(
        text(
            "WITH RECURSIVE up(id, depth) AS (SELECT parent_id, 1 FROM complaints WHERE id = :id "
            "UNION ALL SELECT c.parent_id, up.depth + 1 FROM complaints c JOIN up ON c.id = up.id "
            "WHERE up.depth < :limit) SELECT id FROM up WHERE id IS NOT NULL"
        ),
        {"id": complaint_id, "limit": limit},
    )
    return [row.id for row in rows]


_SELECT_TICKET = (
    "SELECT c.id, c.customer_id, c.line, c.type, c.category, c.description, c.channel, c.retailer_id, "
    "c.severity, c.priority, c.related_parties, c.attachments, c.related_entities, c.external_id, c.contact, "
    "c.state, c.department_id, c.agent_id, c.queue, c.resolution_text, c.resolution_code, c.resolver, "
    "c.resolve_time, c.compensation_points, c.csat, c.nps, c.satisfaction_comment, c.satisfaction_time, "
    "c.reopen_count, c.waited, c.merged_into, c.parent_id, c.creator, c.create_time, c.update_time, "
    "c.close_time, c.version, c.first_response_target, c.first_response_due, c.first_response_time, "
    "c.first_response_breached, c.resolution_target, c.warning_share, c.sla_counted, c.sla_running_since, "
    "c.warned, c.resolution_breached, c.pending_deadline, c.silence_deadline, "
    "p.points AS p_points, p.request_id AS p_request_id, p.state AS p_state, "
    "p.attempts AS p_attempts, p.ledger_entry AS p_ledger_entry, p.refusal_reason AS p_refusal_reason, "
    "p.refusal_message AS p_refusal_message, p.settle_time AS p_settle_time "
    "FROM complaints c LEFT JOIN compensations p ON p.complaint_id = c.id"
)


def _json(value: object) -> list[list[Any]]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, list) else []


def _ticket(row: Row[Any]) -> Ticket:
    compensation = None
    if row.p_state is not None:
        compensation = Compensation(
            complaint_id=row.id,
            customer_id=row.customer_id,
            points=row.p_points,
            request_id=row.p_request_id,
            state=row.p_state,
            attempts=row.p_attempts,
            ledger_entry=row.p_ledger_entry,
            refusal_reason=row.p_refusal_reason,
            refusal_message=row.p_refusal_message,
            settle_time=row.p_settle_time,
        )
    return Ticket(
        id=row.id,
        customer_id=row.customer_id,
        line=row.line,
        type=row.type,
        category=row.category,
        channel=row.channel,
        retailer_id=row.retailer_id,
        priority=Priority(row.priority),
        details=TicketDetails(
            severity=row.severity,
            description=row.description,
            contact=row.contact,
            related_parties=tuple(RelatedParty(*item) for item in _json(row.related_parties)),
            attachments=tuple(Attachment(*item) for item in _json(row.attachments)),
            related_entities=tuple(RelatedEntity(*item) for item in _json(row.related_entities)),
            external_id=row.external_id,
        ),
        state=State(row.state),
        department=row.department_id,
        agent=row.agent_id,
        queue=Queue(row.queue),
        resolution_text=row.resolution_text,
        resolution_code=row.resolution_code,
        resolver=row.resolver,
        resolve_time=row.resolve_time,
        compensation_points=row.compensation_points,
        csat=row.csat,
        nps=row.nps,
        satisfaction_comment=row.satisfaction_comment,
        satisfaction_time=row.satisfaction_time,
        reopen_count=row.reopen_count,
        merged_into=row.merged_into,
        parent_id=row.parent_id,
        creator=row.creator,
        create_time=row.create_time,
        update_time=row.update_time,
        close_time=row.close_time,
        version=row.version,
        first_response_target=row.first_response_target,
        first_response_due=row.first_response_due,
        first_response_time=row.first_response_time,
        first_response_breached=row.first_response_breached,
        resolution_target=row.resolution_target,
        warning_share=row.warning_share,
        sla_counted=row.sla_counted,
        sla_running_since=row.sla_running_since,
        warned=row.warned,
        resolution_breached=row.resolution_breached,
        waited=row.waited,
        pending_deadline=row.pending_deadline,
        silence_deadline=row.silence_deadline,
        compensation=compensation,
    )


# --- notes and history ---------------------------------------------------------------------------


async def add_note(
    session: AsyncSession,
    complaint_id: uuid.UUID,
    *,
    author: str,
    text_: str,
    visibility: str,
    now: datetime,
    merged_from: uuid.UUID | None = None,
) -> Note:
    """Appends a note to the locked ticket, numbered after its last."""
    number = await session.scalar(
        text("UPDATE complaints SET note_count = note_count + 1 WHERE id = :id RETURNING note_count"),
        {"id": complaint_id},
    )
    await session.execute(
        text(
            "INSERT INTO complaint_notes (complaint_id, note, author, text, visibility, create_time, merged_from) "
            "VALUES (:id, :note, :author, :text, :visibility, :now, :merged_from)"
        ),
        {
            "id": complaint_id,
            "note": number,
            "author": author,
            "text": text_,
            "visibility": visibility,
            "now": now,
            "merged_from": merged_from,
        },
    )
    return Note(complaint_id, int(number or 0), author, text_, visibility, now)


async def copy_notes(session: AsyncSession, duplicate_id: uuid.UUID, master_id: uuid.UUID) -> int:
    """Copies the duplicate's notes onto the locked master, after its own, in their order; returns how many."""
    result = await session.execute(
        text(
            "WITH base AS (SELECT note_count FROM complaints WHERE id = :master), "
            "copied AS (INSERT INTO complaint_notes (complaint_id, note, author, text, visibility, create_time, "
            "merged_from) SELECT :master, base.note_count + n.note, n.author, n.text, n.visibility, n.create_time, "
            ":duplicate FROM complaint_notes n, base WHERE n.complaint_id = :duplicate RETURNING note) "
            "UPDATE complaints SET note_count = note_count + (SELECT count(*) FROM copied) WHERE id = :master "
            "RETURNING (SELECT count(*) FROM copied)"
        ),
        {"master": master_id, "duplicate": duplicate_id},
    )
    return int(result.scalar() or 0)


async def list_notes(session: AsyncSession, complaint_id: uuid.UUID, page: PageRequest) -> list[Note]:
    """A ticket's notes, oldest first, after the page's key."""
    rows = await session.execute(
        text("SELECT * FROM complaint_notes WHERE complaint_id = :id AND note > :after ORDER BY note LIMIT :limit"),
        {"id": complaint_id, "after": page.after_int() or 0, "limit": page.fetch_size},
    )
    return [Note(row.complaint_id, row.note, row.author, row.text, row.visibility, row.create_time) for row in rows]


async def add_history(
    session: AsyncSession,
    complaint_id: uuid.UUID,
    *,
    kind: str,
    from_state: State,
    to_state: State,
    reason: str,
    now: datetime,
    detail: str = "",
) -> None:
    """Appends an entry to the locked ticket's history, by the current caller."""
    await session.execute(
        text(
            "WITH numbered AS (UPDATE complaints SET history_count = history_count + 1 WHERE id = :id "
            "RETURNING history_count) "
            "INSERT INTO complaint_history (complaint_id, entry, kind, from_state, to_state, reason, actor, "
            "change_time, detail) SELECT :id, history_count, :kind, :from_state, :to_state, :reason, :actor, :now, "
            ":detail FROM numbered"
        ),
        {
            "id": complaint_id,
            "kind": kind,
            "from_state": from_state.value,
            "to_state": to_state.value,
            "reason": reason,
            "actor": current_caller().subject,
            "now": now,
            "detail": detail,
        },
    )


async def list_history(session: AsyncSession, complaint_id: uuid.UUID, page: PageRequest) -> list[HistoryEntry]:
    """A ticket's history, oldest first, after the page's key."""
    rows = await session.execute(
        text("SELECT * FROM complaint_history WHERE complaint_id = :id AND entry > :after ORDER BY entry LIMIT :limit"),
        {"id": complaint_id, "after": page.after_int() or 0, "limit": page.fetch_size},
    )
    return [
        HistoryEntry(
            row.complaint_id,
            row.entry,
            row.kind,
            State(row.from_state),
            State(row.to_state),
            row.reason,
            row.actor,
            row.change_time,
            row.detail,
        )
        for row in rows
    ]


# --- departments, agents and routing rules -------------------------------------------------------


async def get_department(session: AsyncSession, department_id: str) -> Department | None:
    """A department with its calendar and plan."""
    row = (await session.execute(text("SELECT * FROM departments WHERE id = :id"), {"id": department_id})).first()
    return _department(row) if row else None


async def insert_department(session: AsyncSession, department: Department) -> bool:
    """Adds a department; False when the id is taken."""
    result = await session.execute(
        text(
            "INSERT INTO departments (id, display_name, time_zone, country_code, opening_hours, company_holidays, "
            "company_working_days, sla_targets, paused_states, warning_share, assignment_policy) VALUES (:id, "
            ":display_name, :time_zone, :country_code, CAST(:opening_hours AS jsonb), :company_holidays, "
            ":company_working_days, CAST(:sla_targets AS jsonb), :paused_states, :warning_share, "
            ":assignment_policy) ON CONFLICT (id) DO NOTHING"
        ),
        _department_values(department),
    )
    return rows_affected(result) == 1


async def update_department(session: AsyncSession, department: Department, expected_version: int | None) -> int | None:
    """Replaces a department; its new version, or None when it is missing or at another version."""
    values = _department_values(department)
    values["expected"] = expected_version
    version = await session.scalar(
        text(
            "UPDATE departments SET display_name = :display_name, time_zone = :time_zone, "
            "country_code = :country_code, opening_hours = CAST(:opening_hours AS jsonb), "
            "company_holidays = :company_holidays, company_working_days = :company_working_days, "
            "sla_targets = CAST(:sla_targets AS jsonb), paused_states = :paused_states, "
            "warning_share = :warning_share, assignment_policy = :assignment_policy, version = version + 1 "
            "WHERE id = :id AND (CAST(:expected AS bigint) IS NULL OR version = :expected) RETURNING version"
        ),
        values,
    )
    return None if version is None else int(version)


def _department_values(department: Department) -> dict[str, Any]:
    calendar, plan = department.calendar, department.plan
    return {
        "id": department.department_id,
        "display_name": department.display_name,
        "time_zone": calendar.time_zone,
        "country_code": calendar.country_code,
        "opening_hours": json.dumps([[p.weekday, p.opens, p.closes] for p in sorted(calendar.opening_hours)]),
        "company_holidays": sorted(calendar.company_holidays),
        "company_working_days": sorted(calendar.company_working_days),
        "sla_targets": json.dumps(
            {
                priority.value: [target.first_response.total_seconds() / 60, target.resolution.total_seconds() / 60]
                for priority, target in plan.targets.items()
            }
        ),
        "paused_states": sorted(state.value for state in plan.paused_states),
        "warning_share": plan.warning_share,
        "assignment_policy": department.assignment_policy.value,
    }


def _department(row: Row[Any]) -> Department:
    targets = json.loads(row.sla_targets) if isinstance(row.sla_targets, str) else row.sla_targets
    return Department(
        department_id=row.id,
        display_name=row.display_name,
        calendar=BusinessCalendar(
            time_zone=row.time_zone,
            opening_hours=tuple(OpeningPeriod(*period) for period in _json(row.opening_hours)),
            country_code=row.country_code,
            company_holidays=frozenset[date](row.company_holidays),
            company_working_days=frozenset[date](row.company_working_days),
        ),
        plan=SlaPlan(
            targets={
                Priority(priority): SlaTarget(timedelta(minutes=response), timedelta(minutes=resolution))
                for priority, (response, resolution) in targets.items()
            },
            paused_states=frozenset(State(state) for state in row.paused_states),
            warning_share=row.warning_share,
        ),
        assignment_policy=AssignmentPolicy(row.assignment_policy),
        version=row.version,
    )


async def insert_agent(session: AsyncSession, agent: Agent) -> bool:
    """Adds an agent; False when the id is taken in the department."""
    result = await session.execute(
        text(
            "INSERT INTO agents (department_id, id, display_name, available, senior) "
            "VALUES (:department, :id, :display_name, :available, :senior) ON CONFLICT DO NOTHING"
        ),
        {
            "department": agent.department_id,
            "id": agent.agent_id,
            "display_name": agent.display_name,
            "available": agent.available,
            "senior": agent.senior,
        },
    )
    return rows_affected(result) == 1


async def update_agent(session: AsyncSession, agent: Agent) -> Agent | None:
    """Changes an agent's name, availability and seniority; None when it does not exist."""
    row = (
        await session.execute(
            text(
                "UPDATE agents SET display_name = :display_name, available = :available, senior = :senior "
                "WHERE department_id = :department AND id = :id RETURNING *"
            ),
            {
                "department": agent.department_id,
                "id": agent.agent_id,
                "display_name": agent.display_name,
                "available": agent.available,
                "senior": agent.senior,
            },
        )
    ).first()
    return _agent(row) if row else None


async def get_agent(session: AsyncSession, department_id: str, agent_id: str) -> Agent | None:
    """An agent with the tickets it holds."""
    row = (
        await session.execute(
            text("SELECT * FROM agents WHERE department_id = :d AND id = :id"), {"d": department_id, "id": agent_id}
        )
    ).first()
    return _agent(row) if row else None


def _agent(row: Row[Any]) -> Agent:
    return Agent(row.department_id, row.id, row.display_name, row.available, row.senior, row.open_complaints)


async def lock_agent_loads(session: AsyncSession, department_id: str) -> list[AgentLoad]:
    """The department's agents, locked so that concurrent assignments take turns."""
    rows = await session.execute(
        text("SELECT * FROM agents WHERE department_id = :d ORDER BY id FOR UPDATE"), {"d": department_id}
    )
    return [AgentLoad(row.id, row.available, row.senior, row.open_complaints, row.last_assign_time) for row in rows]


async def take_ticket(session: AsyncSession, department_id: str, agent_id: str, now: datetime) -> None:
    """The agent holds one more open ticket, handed to it at `now`."""
    await session.execute(
        text(
            "UPDATE agents SET open_complaints = open_complaints + 1, last_assign_time = :now "
            "WHERE department_id = :d AND id = :id"
        ),
        {"d": department_id, "id": agent_id, "now": now},
    )


async def release_ticket(session: AsyncSession, department_id: str, agent_id: str) -> None:
    """The agent holds one open ticket fewer."""
    await session.execute(
        text(
            "UPDATE agents SET open_complaints = greatest(open_complaints - 1, 0) WHERE department_id = :d AND id = :id"
        ),
        {"d": department_id, "id": agent_id},
    )


async def routing_rules(session: AsyncSession) -> list[RoutingRule]:
    """Every routing rule (a bounded table the operator keeps)."""
    rows = await session.execute(
        text("SELECT * FROM routing_rules ORDER BY id LIMIT :limit"), {"limit": MAX_ROUTING_RULES}
    )
    return [_rule(row) for row in rows]


async def list_routing_rules(session: AsyncSession, page: PageRequest) -> list[RoutingRule]:
    """Routing rules by id after the page's key."""
    after = str(page.after[0]) if page.after else ""
    rows = await session.execute(
        text("SELECT * FROM routing_rules WHERE id > :after ORDER BY id LIMIT :limit"),
        {"after": after, "limit": page.fetch_size},
    )
    return [_rule(row) for row in rows]


async def insert_routing_rule(session: AsyncSession, rule: RoutingRule) -> bool:
    """Adds a rule; False when the id is taken."""
    result = await session.execute(
        text(
            "INSERT INTO routing_rules (id, category, channel, segment, region, department_id, priority) "
            "VALUES (:id, :category, :channel, :segment, :region, :department, :priority) ON CONFLICT DO NOTHING"
        ),
        {
            "id": rule.rule_id,
            "category": rule.category,
            "channel": rule.channel,
            "segment": rule.segment,
            "region": rule.region,
            "department": rule.department,
            "priority": rule.priority.value,
        },
    )
    return rows_affected(result) == 1


async def delete_routing_rule(session: AsyncSession, rule_id: str) -> bool:
    """Removes a rule; False when there was none."""
    result = await session.execute(text("DELETE FROM routing_rules WHERE id = :id"), {"id": rule_id})
    return rows_affected(result) == 1


def _rule(row: Row[Any]) -> RoutingRule:
    return RoutingRule(
        rule_id=row.id,
        department=row.department_id,
        priority=Priority(row.priority),
        category=row.category,
        channel=row.channel,
        segment=row.segment,
        region=row.region,
    )


# --- customers' segments -------------------------------------------------------------------------


async def segments_of(session: AsyncSession, customer_id: uuid.UUID) -> frozenset[str]:
    """The segments the customer service last announced for the customer."""
    rows = await session.execute(
        text("SELECT segment FROM customer_segments WHERE customer_id = :c"), {"c": customer_id}
    )
    return frozenset(row.segment for row in rows)


async def change_segments(
    session: AsyncSession, customer_id: uuid.UUID, entered: Sequence[str], left: Sequence[str]
) -> None:
    """Records segments entered and left."""
    if left:
        await session.execute(
            text("DELETE FROM customer_segments WHERE customer_id = :c AND segment = ANY(:left)"),
            {"c": customer_id, "left": list(left)},
        )
    if entered:
        await session.execute(
            text(
                "INSERT INTO customer_segments (customer_id, segment) SELECT :c, unnest(CAST(:entered AS text[])) "
                "ON CONFLICT DO NOTHING"
            ),
            {"c": customer_id, "entered": list(entered)},
        )


# --- compensations -------------------------------------------------------------------------------


async def insert_compensation(session: AsyncSession, compensation: Compensation, now: datetime) -> None:
    """Records the goodwill credit owed, in the transaction of the resolution."""
    await session.execute(
        text(
            "INSERT INTO compensations (complaint_id, customer_id, points, request_id, state, next_attempt_time, "
            "create_time) VALUES (:complaint, :customer, :points, :request_id, 'pending', :now, :now)"
        ),
        {
            "complaint": compensation.complaint_id,
            "customer": compensation.customer_id,
            "points": compensation.points,
            "request_id": compensation.request_id,
            "now": now,
        },
    )


async def claim_due_compensations(
    session: AsyncSession, now: datetime, lease: timedelta, limit: int
) -> list[Compensation]:
    """Pending compensations due now, each leased until `now + lease` so that concurrent senders
    skip it (and a sender that died leaves it for the next after the lease)."""
    rows = await session.execute(
        text(
            "WITH due AS (SELECT complaint_id FROM compensations WHERE state = 'pending' "
            "AND next_attempt_time <= :now ORDER BY next_attempt_time LIMIT :limit FOR UPDATE SKIP LOCKED) "
            "UPDATE compensations p SET attempts = attempts + 1, next_attempt_time = :lease_end FROM due "
            "WHERE p.complaint_id = due.complaint_id RETURNING p.*"
        ),
        {"now": now, "lease_end": now + lease, "limit": limit},
    )
    return [
        Compensation(
            row.complaint_id,
            row.customer_id,
            row.points,
            row.request_id,
            row.state,
            row.attempts,
            row.ledger_entry,
            row.refusal_reason,
            row.refusal_message,
            row.settle_time,
        )
        for row in rows
    ]


async def settle_compensation(
    session: AsyncSession,
    complaint_id: uuid.UUID,
    *,
    state: str,
    ledger_entry: str = "",
    refusal_reason: str = "",
    refusal_message: str = "",
    now: datetime,
) -> bool:
    """Records the outcome of a pending compensation; False when it was settled already."""
    result = await session.execute(
        text(
            "UPDATE compensations SET state = :state, ledger_entry = :entry, refusal_reason = :reason, "
            "refusal_message = :message, settle_time = :now WHERE complaint_id = :id AND state = 'pending'"
        ),
        {
            "id": complaint_id,
            "state": state,
            "entry": ledger_entry,
            "reason": refusal_reason,
            "message": refusal_message,
            "now": now,
        },
    )
    return rows_affected(result) == 1


async def retry_compensation_at(session: AsyncSession, complaint_id: uuid.UUID, when: datetime) -> None:
    """Sends a pending compensation again at `when` (the loyalty service could not be reached)."""
    await session.execute(
        text("UPDATE compensations SET next_attempt_time = :when WHERE complaint_id = :id AND state = 'pending'"),
        {"id": complaint_id, "when": when},
    )


# --- the scheduled work --------------------------------------------------------------------------


async def lock_due(session: AsyncSession, column: str, now: datetime, limit: int) -> list[uuid.UUID]:
    """Tickets whose `column` (next_sla_check, pending_deadline or silence_deadline) came by `now`,
    locked and skipped by concurrent runs, read through that column's index."""
    condition = {
        "next_sla_check": "next_sla_check IS NOT NULL",
        "pending_deadline": "state = 'pending'",
        "silence_deadline": "state = 'resolved'",
    }[column]
    rows = await session.execute(
        text(
            f"SELECT id FROM complaints WHERE {condition} AND {column} <= :now ORDER BY {column} "
            "LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "limit": limit},
    )
    return [row.id for row in rows]


# --- erasure -------------------------------------------------------------------------------------


async def erase_customer_words(session: AsyncSession, customer_id: uuid.UUID) -> int:
    """Empties the personal data of a customer's tickets (descriptions, contact, parties' names,
    attachments, note texts, satisfaction comments) and stored answers; numbers stay. Returns tickets."""
    result = await session.execute(
        text(
            "UPDATE complaints SET description = '', contact = '', related_parties = '[]', attachments = '[]', "
            "satisfaction_comment = '', resolution_text = '', erased = true WHERE customer_id = :c"
        ),
        {"c": customer_id},
    )
    await session.execute(
        text(
            "UPDATE complaint_notes n SET text = '' FROM complaints c "
            "WHERE c.customer_id = :c AND n.complaint_id = c.id AND n.text <> ''"
        ),
        {"c": customer_id},
    )
    await session.execute(
        text(
            "UPDATE complaint_history h SET reason = '' FROM complaints c "
            "WHERE c.customer_id = :c AND h.complaint_id = c.id"
        ),
        {"c": customer_id},
    )
    await session.execute(
        text("UPDATE idempotency_keys SET response = NULL, fingerprint = ''::bytea WHERE customer_id = :c"),
        {"c": customer_id},
    )
    return rows_affected(result)


async def link_request_to_customer(session: AsyncSession, customer_id: uuid.UUID, request_id: str) -> None:
    """Marks the stored answer of the request being served as being about a customer, for erasure."""
    await session.execute(
        idempotency_keys.update()
        .where(idempotency_keys.c.caller == current_caller().subject, idempotency_keys.c.request_id == request_id)
        .values(customer_id=customer_id)
    )
