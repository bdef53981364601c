"""`crm.complaints.v1.ComplaintService` over gRPC: maps messages to the ticket use cases and back.

Every mutation runs once per request id, in one transaction with the stored answer, which is marked
as being about the ticket's customer so that erasure finds it. The customer's existence is asked of
the customer service before that transaction opens.
"""

from typing import TypeAlias

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.clock import Clock
from chassis.database import Database
from chassis.errors import AlreadyExists, PermissionDenied, Violations, not_found
from chassis.etags import version_from_etag
from chassis.idempotency import IdempotentRunner
from chassis.names import CUSTOMER
from chassis.pagination import Page, read_page_request
from chassis.wellknown import timestamp_from_proto
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, complaint_service_pb2_grpc, departments_pb2
from services.complaints import administration, complaints, kpis, mapping, scheduled, store
from services.complaints.compensation import GoodwillSender
from services.complaints.complaints import Timeouts
from services.complaints.customer_directory import CustomerDirectory
from services.complaints.departments import check_department
from services.complaints.lifecycle import Verb
from services.complaints.resource_names import AGENT, COMPLAINT, DEPARTMENT, ROUTING_RULE
from services.complaints.tickets import (
    MAX_NOTE,
    MAX_REASON,
    TicketView,
    check_details,
    check_satisfaction,
    check_text,
)

Context: TypeAlias = grpc.aio.ServicerContext[Message, Message]
VerbRequest: TypeAlias = (
    complaint_service_pb2.StartComplaintRequest
    | complaint_service_pb2.AwaitCustomerRequest
    | complaint_service_pb2.HoldComplaintRequest
    | complaint_service_pb2.ResumeComplaintRequest
    | complaint_service_pb2.RejectComplaintRequest
    | complaint_service_pb2.CancelComplaintRequest
    | complaint_service_pb2.AcceptResolutionRequest
    | complaint_service_pb2.RejectResolutionRequest
)
_UPDATABLE = {"severity", "description", "contact", "related_parties", "attachments", "related_entities", "external_id"}
MAX_COMPENSATION_POINTS = 1_000_000


class ComplaintServicer(complaint_service_pb2_grpc.ComplaintServiceServicer):
    """The complaints service's gRPC face."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        customers: CustomerDirectory,
        goodwill: GoodwillSender,
        timeouts: Timeouts,
    ) -> None:
        self._database = database
        self._clock = clock
        self._customers = customers
        self._goodwill = goodwill
        self._timeouts = timeouts
        self._once = IdempotentRunner(database, store.idempotency_keys)

    async def CreateComplaint(
        self, request: complaint_service_pb2.CreateComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        new = mapping.new_ticket_from_proto(request.complaint)
        _require_own_shop(new.retailer_id)
        customer = await self._customers.customer_facts(new.customer_id)
        creator = current_caller().subject

        async def file(session: AsyncSession) -> complaint_pb2.Complaint:
            now = self._clock.now()
            view = await complaints.file_ticket(session, new, customer, creator=creator, now=now)
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, file)

    async def GetComplaint(
        self, request: complaint_service_pb2.GetComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        complaint_id = COMPLAINT.parse_uuid(request.name)
        async with self._database.transaction() as session:
            view = await complaints.get_ticket(session, complaint_id)
        return mapping.complaint_to_proto(view, self._clock.now())

    async def ListComplaints(
        self, request: complaint_service_pb2.ListComplaintsRequest, context: Context
    ) -> complaint_service_pb2.ListComplaintsResponse:
        criteria = store.TicketFilter(
            customer_id=CUSTOMER.parse_uuid(request.customer, "customer") if request.customer else None,
            state=mapping.state_from_proto(request.state, "state") if request.state else None,
            department=DEPARTMENT.parse_slug(request.department, "department") if request.department else "",
            breached_only=request.breached_only,
        )
        fingerprint: dict[str, str | int | bool | None] = {
            "customer": request.customer,
            "state": request.state,
            "department": request.department,
            "breached_only": request.breached_only,
        }
        page = read_page_request(request.page_size, request.page_token, fingerprint)
        async with self._database.transaction() as session:
            views = await complaints.list_tickets(session, criteria, page)
        result = Page.cut(views, page, lambda v: [v.ticket.create_time.isoformat(), str(v.ticket.id)], fingerprint)
        now = self._clock.now()
        return complaint_service_pb2.ListComplaintsResponse(
            complaints=[mapping.complaint_to_proto(v, now) for v in result.items],
            next_page_token=result.next_page_token,
        )

    async def UpdateComplaint(
        self, request: complaint_service_pb2.UpdateComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        complaint_id = COMPLAINT.parse_uuid(request.complaint.name, "complaint.name")
        expected = version_from_etag(request.complaint.etag, "complaint.etag")
        paths = set(request.update_mask.paths)
        violations = Violations()
        if not paths:
            violations.add("update_mask", "must name the fields to change")
        for path in sorted(paths - _UPDATABLE):
            violations.add("update_mask", f"{path!r} cannot be updated")
        given = mapping.details_from_proto(request.complaint, violations)
        violations.raise_if_any()

        async def update(session: AsyncSession) -> complaint_pb2.Complaint:
            current = await complaints.locked_details(session, complaint_id)
            merged = current.__class__(
                **{name: getattr(given if name in paths else current, name) for name in current.__dataclass_fields__}
            )
            checked = Violations()
            check_details(merged, checked)
            checked.raise_if_any()
            view = await complaints.update_details(session, complaint_id, merged, expected, self._clock.now())
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, update)

    async def StartComplaint(
        self, request: complaint_service_pb2.StartComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        return await self._transition(request, Verb.START)

    async def AwaitCustomer(
        self, request: complaint_service_pb2.AwaitCustomerRequest, context: Context
    ) -> complaint_pb2.Complaint:
        return await self._transition(request, Verb.AWAIT_CUSTOMER)

    async def HoldComplaint(
        self, request: complaint_service_pb2.HoldComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        return await self._transition(request, Verb.HOLD)

    async def ResumeComplaint(
        self, request: complaint_service_pb2.ResumeComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        return await self._transition(request, Verb.RESUME)

    async def RejectComplaint(
        self, request: complaint_service_pb2.RejectComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        return await self._transition(request, Verb.REJECT)

    async def CancelComplaint(
        self, request: complaint_service_pb2.CancelComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        return await self._transition(request, Verb.CANCEL)

    async def AcceptResolution(
        self, request: complaint_service_pb2.AcceptResolutionRequest, context: Context
    ) -> complaint_pb2.Complaint:
        return await self._transition(request, Verb.ACCEPT)

    async def RejectResolution(
        self, request: complaint_service_pb2.RejectResolutionRequest, context: Context
    ) -> complaint_pb2.Complaint:
        return await self._transition(request, Verb.REOPEN)

    async def ResolveComplaint(
        self, request: complaint_service_pb2.ResolveComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        complaint_id = COMPLAINT.parse_uuid(request.name)
        expected = version_from_etag(request.etag)
        resolution = request.resolution
        violations = Violations()
        check_text(violations, "resolution.text", resolution.text, MAX_NOTE, required=True)
        check_text(violations, "resolution.code", resolution.code, 64, required=True)
        if not 0 <= resolution.compensation_points <= MAX_COMPENSATION_POINTS:
            violations.add("resolution.compensation_points", f"must be between 0 and {MAX_COMPENSATION_POINTS}")
        violations.raise_if_any()

        async def resolve(session: AsyncSession) -> complaint_pb2.Complaint:
            view = await complaints.resolve(
                session,
                complaint_id,
                text=resolution.text.strip(),
                code=resolution.code.strip(),
                points=resolution.compensation_points,
                expected_version=expected,
                timeouts=self._timeouts,
                now=self._clock.now(),
            )
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, resolve)

    async def MergeComplaint(
        self, request: complaint_service_pb2.MergeComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        duplicate_id = COMPLAINT.parse_uuid(request.name)
        master_id = COMPLAINT.parse_uuid(request.master, "master")
        reason = _reason(request.reason)

        async def merge(session: AsyncSession) -> complaint_pb2.Complaint:
            view = await complaints.merge(session, duplicate_id, master_id, reason, now=self._clock.now())
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, merge)

    async def LinkComplaint(
        self, request: complaint_service_pb2.LinkComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        child_id = COMPLAINT.parse_uuid(request.name)
        parent_id = COMPLAINT.parse_uuid(request.parent, "parent")
        reason = _reason(request.reason)

        async def link(session: AsyncSession) -> complaint_pb2.Complaint:
            view = await complaints.link(session, child_id, parent_id, reason, now=self._clock.now())
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, link)

    async def AssignComplaint(
        self, request: complaint_service_pb2.AssignComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        complaint_id = COMPLAINT.parse_uuid(request.name)
        department_id = DEPARTMENT.parse_slug(request.department, "department") if request.department else ""
        agent_id = ""
        if request.agent:
            agent_department, agent_id = AGENT.parse(request.agent, "agent")
            department_id = department_id or agent_department
            if agent_department != department_id:
                raise not_found("agent", request.agent)
        reason = _reason(request.reason)

        async def assign(session: AsyncSession) -> complaint_pb2.Complaint:
            view = await complaints.assign(
                session,
                complaint_id,
                department_id=department_id,
                agent_id=agent_id,
                reason=reason,
                now=self._clock.now(),
            )
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, assign)

    async def EscalateComplaint(
        self, request: complaint_service_pb2.EscalateComplaintRequest, context: Context
    ) -> complaint_pb2.Complaint:
        complaint_id = COMPLAINT.parse_uuid(request.name)
        reason = _reason(request.reason, required=True)

        async def escalate(session: AsyncSession) -> complaint_pb2.Complaint:
            view = await complaints.escalate(session, complaint_id, reason, now=self._clock.now())
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, escalate)

    async def RecordSatisfaction(
        self, request: complaint_service_pb2.RecordSatisfactionRequest, context: Context
    ) -> complaint_pb2.Complaint:
        complaint_id = COMPLAINT.parse_uuid(request.name)
        answer = request.satisfaction
        check_satisfaction(answer.csat, answer.nps, answer.comment)

        async def record(session: AsyncSession) -> complaint_pb2.Complaint:
            view = await complaints.record_satisfaction(
                session, complaint_id, answer.csat, answer.nps, answer.comment.strip(), now=self._clock.now()
            )
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, record)

    async def CreateNote(
        self, request: complaint_service_pb2.CreateNoteRequest, context: Context
    ) -> complaint_pb2.Note:
        complaint_id = COMPLAINT.parse_uuid(request.parent, "parent")
        violations = Violations()
        check_text(violations, "note.text", request.note.text, MAX_NOTE, required=True)
        violations.raise_if_any()
        visibility = mapping.visibility_from_proto(request.note.visibility)

        async def add(session: AsyncSession) -> complaint_pb2.Note:
            note = await complaints.add_note(
                session, complaint_id, request.note.text.strip(), visibility, now=self._clock.now()
            )
            ticket = await store.get_ticket(session, complaint_id)
            if ticket is not None:
                await store.link_request_to_customer(session, ticket.customer_id, request.request_id)
            return mapping.note_to_proto(note)

        return await self._once.run(request, complaint_pb2.Note, add)

    async def ListNotes(
        self, request: complaint_service_pb2.ListNotesRequest, context: Context
    ) -> complaint_service_pb2.ListNotesResponse:
        complaint_id = COMPLAINT.parse_uuid(request.parent, "parent")
        criteria = {"parent": COMPLAINT.format(complaint_id)}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            await complaints.get_ticket(session, complaint_id)
            notes = await store.list_notes(session, complaint_id, page)
        result = Page.cut(notes, page, lambda n: [n.number], criteria)
        return complaint_service_pb2.ListNotesResponse(
            notes=[mapping.note_to_proto(n) for n in result.items], next_page_token=result.next_page_token
        )

    async def ListHistory(
        self, request: complaint_service_pb2.ListHistoryRequest, context: Context
    ) -> complaint_service_pb2.ListHistoryResponse:
        complaint_id = COMPLAINT.parse_uuid(request.parent, "parent")
        criteria = {"parent": COMPLAINT.format(complaint_id)}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            await complaints.get_ticket(session, complaint_id)
            entries = await store.list_history(session, complaint_id, page)
        result = Page.cut(entries, page, lambda e: [e.number], criteria)
        return complaint_service_pb2.ListHistoryResponse(
            entries=[mapping.history_to_proto(e) for e in result.items], next_page_token=result.next_page_token
        )

    async def CreateDepartment(
        self, request: complaint_service_pb2.CreateDepartmentRequest, context: Context
    ) -> departments_pb2.Department:
        department_id = DEPARTMENT.parse_slug(DEPARTMENT.format(request.department_id), "department_id")
        department = mapping.department_from_proto(request.department, department_id)
        check_department(department)

        async def create(session: AsyncSession) -> departments_pb2.Department:
            if not await store.insert_department(session, department):
                raise AlreadyExists("DEPARTMENT_EXISTS", f"{DEPARTMENT.format(department_id)} exists already")
            return mapping.department_to_proto(department)

        return await self._once.run(request, departments_pb2.Department, create)

    async def GetDepartment(
        self, request: complaint_service_pb2.GetDepartmentRequest, context: Context
    ) -> departments_pb2.Department:
        department_id = DEPARTMENT.parse_slug(request.name)
        async with self._database.transaction() as session:
            department = await administration.get_department(session, department_id)
        return mapping.department_to_proto(department)

    async def UpdateDepartment(
        self, request: complaint_service_pb2.UpdateDepartmentRequest, context: Context
    ) -> departments_pb2.Department:
        department_id = DEPARTMENT.parse_slug(request.department.name, "department.name")
        expected = version_from_etag(request.department.etag, "department.etag")
        department = mapping.department_from_proto(request.department, department_id)
        check_department(department)

        async def update(session: AsyncSession) -> departments_pb2.Department:
            updated = await administration.update_department(session, department, expected)
            return mapping.department_to_proto(updated)

        return await self._once.run(request, departments_pb2.Department, update)

    async def CreateAgent(
        self, request: complaint_service_pb2.CreateAgentRequest, context: Context
    ) -> departments_pb2.Agent:
        department_id = DEPARTMENT.parse_slug(request.parent, "parent")
        agent = mapping.agent_from_proto(request.agent, department_id, request.agent_id)

        async def create(session: AsyncSession) -> departments_pb2.Agent:
            return mapping.agent_to_proto(await administration.create_agent(session, agent))

        return await self._once.run(request, departments_pb2.Agent, create)

    async def UpdateAgent(
        self, request: complaint_service_pb2.UpdateAgentRequest, context: Context
    ) -> departments_pb2.Agent:
        department_id, agent_id = AGENT.parse(request.agent.name, "agent.name")
        agent = mapping.agent_from_proto(request.agent, department_id, agent_id)

        async def update(session: AsyncSession) -> departments_pb2.Agent:
            return mapping.agent_to_proto(await administration.update_agent(session, agent))

        return await self._once.run(request, departments_pb2.Agent, update)

    async def CreateRoutingRule(
        self, request: complaint_service_pb2.CreateRoutingRuleRequest, context: Context
    ) -> departments_pb2.RoutingRule:
        rule_id = ROUTING_RULE.parse_slug(ROUTING_RULE.format(request.routing_rule_id), "routing_rule_id")
        rule = mapping.rule_from_proto(request.routing_rule, rule_id)

        async def create(session: AsyncSession) -> departments_pb2.RoutingRule:
            return mapping.rule_to_proto(await administration.create_rule(session, rule))

        return await self._once.run(request, departments_pb2.RoutingRule, create)

    async def ListRoutingRules(
        self, request: complaint_service_pb2.ListRoutingRulesRequest, context: Context
    ) -> complaint_service_pb2.ListRoutingRulesResponse:
        criteria: dict[str, str] = {}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            rules = await store.list_routing_rules(session, page)
        result = Page.cut(rules, page, lambda r: [r.rule_id], criteria)
        return complaint_service_pb2.ListRoutingRulesResponse(
            routing_rules=[mapping.rule_to_proto(r) for r in result.items], next_page_token=result.next_page_token
        )

    async def DeleteRoutingRule(
        self, request: complaint_service_pb2.DeleteRoutingRuleRequest, context: Context
    ) -> empty_pb2.Empty:
        rule_id = ROUTING_RULE.parse_slug(request.name)
        async with self._database.transaction() as session:
            if not await store.delete_routing_rule(session, rule_id):
                raise not_found("routing_rule", request.name)
        return empty_pb2.Empty()

    async def GetComplaintKpis(
        self, request: complaint_service_pb2.GetComplaintKpisRequest, context: Context
    ) -> complaint_service_pb2.ComplaintKpis:
        start, end = kpis.reporting_period(
            timestamp_from_proto(request.start_time) if request.HasField("start_time") else None,
            timestamp_from_proto(request.end_time) if request.HasField("end_time") else None,
            self._clock.now(),
        )
        async with self._database.transaction() as session:
            figures = await kpis.complaint_kpis(session, start, end)
        return kpis.kpis_to_proto(figures)

    async def RunScheduledWork(
        self, request: complaint_service_pb2.RunScheduledWorkRequest, context: Context
    ) -> complaint_service_pb2.RunScheduledWorkResponse:
        done = await scheduled.run_scheduled_work(self._database, self._clock, self._timeouts, self._goodwill)
        return complaint_service_pb2.RunScheduledWorkResponse(
            warnings_announced=done.warnings,
            breaches_announced=done.breaches,
            pending_cancelled=done.pending_cancelled,
            resolutions_closed=done.resolutions_closed,
            compensations_granted=done.compensations_granted,
            compensations_refused=done.compensations_refused,
        )

    async def _transition(self, request: VerbRequest, verb: Verb) -> complaint_pb2.Complaint:
        complaint_id = COMPLAINT.parse_uuid(request.name)
        expected = version_from_etag(request.etag)
        reason = _reason(request.reason)

        async def move(session: AsyncSession) -> complaint_pb2.Complaint:
            view = await complaints.transition(
                session,
                complaint_id,
                verb,
                reason,
                expected_version=expected,
                timeouts=self._timeouts,
                now=self._clock.now(),
            )
            return await self._answer(session, request.request_id, view)

        return await self._once.run(request, complaint_pb2.Complaint, move)

    async def _answer(self, session: AsyncSession, request_id: str, view: TicketView) -> complaint_pb2.Complaint:
        await store.link_request_to_customer(session, view.ticket.customer_id, request_id)
        return mapping.complaint_to_proto(view, self._clock.now())


def _reason(reason: str, *, required: bool = False) -> str:
    violations = Violations()
    check_text(violations, "reason", reason, MAX_REASON, required=required)
    violations.raise_if_any()
    return reason.strip()


def _require_own_shop(retailer_id: str) -> None:
    """A retail partner files tickets only at its own counters."""
    caller = current_caller()
    if caller.kind == "retailer" and caller.tenant != retailer_id:
        raise PermissionDenied(
            "OTHER_PARTNER", "a retail partner files tickets only for its own shops", {"retailer_id": retailer_id}
        )
