"""SLA breaches announced once under concurrent schedule runs, the goodwill saga to the real loyalty
service (credited once, a refusal kept), satisfaction once, and erasure of a customer's words."""

import asyncio
from datetime import timedelta

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import ManualClock
from chassis.database import Database
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, events_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1 import events_pb2 as customer_events_pb2
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.complaints import customer_events
from tests.integration.complaints.builders import file, resolve, start
from tests.support import failure, request_id

BREACHED = events_pb2.ComplaintSlaBreached.DESCRIPTOR.full_name


async def _breaches(engine: AsyncEngine, complaint: str) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT payload FROM outbox WHERE type = :t"), {"t": BREACHED})
        found = [events_pb2.ComplaintSlaBreached.FromString(row.payload) for row in rows]
    return sorted(event.target for event in found if event.complaint == complaint)


async def test_a_breach_is_announced_once_under_concurrent_schedule_runs(
    complaints_stub: ComplaintServiceStub, customer: str, complaints_clock: ManualClock, complaints_engine: AsyncEngine
):
    filed = await file(complaints_stub, customer)
    complaints_clock.advance(timedelta(days=30))
    await asyncio.gather(
        *(
            complaints_stub.RunScheduledWork(complaint_service_pb2.RunScheduledWorkRequest(), timeout=60)
            for _ in range(4)
        )
    )
    assert await _breaches(complaints_engine, filed.name) == [
        events_pb2.SLA_TARGET_KIND_FIRST_RESPONSE,
        events_pb2.SLA_TARGET_KIND_RESOLUTION,
    ]
    got = await complaints_stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)
    assert got.sla.resolution_breached and got.sla.warned and got.sla.remaining.seconds == 0
    listed = await complaints_stub.ListComplaints(
        complaint_service_pb2.ListComplaintsRequest(customer=customer, breached_only=True), timeout=5
    )
    assert [c.name for c in listed.complaints] == [filed.name]


async def test_a_pending_ticket_stops_its_clock_and_does_not_breach(
    complaints_stub: ComplaintServiceStub, customer: str, complaints_clock: ManualClock, complaints_engine: AsyncEngine
):
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    waiting = await complaints_stub.AwaitCustomer(
        complaint_service_pb2.AwaitCustomerRequest(name=filed.name, request_id=request_id()), timeout=5
    )
    assert waiting.sla.paused and not waiting.sla.HasField("resolution_due_time")
    complaints_clock.advance(timedelta(days=2))
    await complaints_stub.RunScheduledWork(complaint_service_pb2.RunScheduledWorkRequest(), timeout=60)
    got = await complaints_stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)
    assert got.sla.elapsed == waiting.sla.elapsed
    assert events_pb2.SLA_TARGET_KIND_RESOLUTION not in await _breaches(complaints_engine, filed.name)


async def test_goodwill_is_credited_once_however_often_the_sender_runs(
    complaints_stub: ComplaintServiceStub, loyalty: LoyaltyServiceStub, customer: str
):
    account = await loyalty.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=customer, request_id=request_id()), timeout=5
    )
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    resolved = await resolve(complaints_stub, filed.name, points=250)
    assert resolved.compensation.state == complaint_pb2.COMPENSATION_STATE_PENDING
    for _ in range(3):
        await complaints_stub.RunScheduledWork(complaint_service_pb2.RunScheduledWorkRequest(), timeout=60)
    got = await complaints_stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)
    assert got.compensation.state == complaint_pb2.COMPENSATION_STATE_GRANTED and got.compensation.ledger_entry
    balance = await loyalty.GetBalance(loyalty_service_pb2.GetBalanceRequest(name=f"{account.name}/balance"), timeout=5)
    assert balance.available_points == 250


async def test_a_refused_credit_is_kept_and_shown_on_the_ticket(complaints_stub: ComplaintServiceStub, customer: str):
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    await resolve(complaints_stub, filed.name, points=100)
    await complaints_stub.RunScheduledWork(complaint_service_pb2.RunScheduledWorkRequest(), timeout=60)
    got = await complaints_stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)
    assert got.compensation.state == complaint_pb2.COMPENSATION_STATE_REFUSED
    assert got.compensation.refusal_reason == "ACCOUNT_NOT_FOUND"


async def test_satisfaction_is_recorded_once_after_closing(complaints_stub: ComplaintServiceStub, customer: str):
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    await resolve(complaints_stub, filed.name)
    answer = complaint_pb2.Satisfaction(csat=5, nps=9, comment="Rahmat!")
    code, error = await failure(
        complaints_stub.RecordSatisfaction(
            complaint_service_pb2.RecordSatisfactionRequest(
                name=filed.name, satisfaction=answer, request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_CLOSED")
    await complaints_stub.AcceptResolution(
        complaint_service_pb2.AcceptResolutionRequest(name=filed.name, request_id=request_id()), timeout=5
    )
    answered = await complaints_stub.RecordSatisfaction(
        complaint_service_pb2.RecordSatisfactionRequest(name=filed.name, satisfaction=answer, request_id=request_id()),
        timeout=5,
    )
    assert (answered.satisfaction.csat, answered.satisfaction.nps) == (5, 9)
    code, error = await failure(
        complaints_stub.RecordSatisfaction(
            complaint_service_pb2.RecordSatisfactionRequest(
                name=filed.name, satisfaction=answer, request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_ANSWERED")


async def test_a_rejected_resolution_reopens_the_ticket_and_counts(
    complaints_stub: ComplaintServiceStub, customer: str
):
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    await resolve(complaints_stub, filed.name)
    reopened = await complaints_stub.RejectResolution(
        complaint_service_pb2.RejectResolutionRequest(name=filed.name, reason="still charged", request_id=request_id()),
        timeout=5,
    )
    assert (reopened.state, reopened.reopen_count) == (complaint_pb2.COMPLAINT_STATE_IN_PROGRESS, 1)


async def test_erasure_removes_the_words_of_the_customers_tickets_and_keeps_the_numbers(
    complaints_stub: ComplaintServiceStub, customer: str, complaints_database: Database
):
    filed = await file(complaints_stub, customer)
    await complaints_stub.CreateNote(
        complaint_service_pb2.CreateNoteRequest(
            parent=filed.name,
            note=complaint_pb2.Note(text="Mijoz qoʻngʻiroq qildi", visibility=complaint_pb2.NOTE_VISIBILITY_INTERNAL),
            request_id=request_id(),
        ),
        timeout=5,
    )
    event = common_events_pb2.Event(event_type=customer_events_pb2.CustomerErased.DESCRIPTOR.full_name)
    event.payload.Pack(customer_events_pb2.CustomerErased(customer=customer))
    async with complaints_database.transaction() as session:
        await customer_events.apply_customer_event(session, event)
    got = await complaints_stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)
    assert (got.description, got.contact) == ("", "")
    assert (got.category, got.channel, got.state) == (filed.category, filed.channel, filed.state)
    notes = await complaints_stub.ListNotes(complaint_service_pb2.ListNotesRequest(parent=filed.name), timeout=5)
    assert [n.text for n in notes.notes] == [""]
