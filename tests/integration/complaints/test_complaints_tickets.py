"""Tickets through the real complaints service, the real customer service and PostgreSQL: filing
(idempotent, validated, the customer checked), reading, listing, updating, the state table,
concurrent transitions, history, notes, merge and link."""

import asyncio
import uuid
from datetime import timedelta

import grpc
from google.protobuf import field_mask_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import ManualClock
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from tests.integration.complaints.builders import file, start, ticket
from tests.support import failure, request_id


async def _count(engine: AsyncEngine, sql: str, **values: object) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(sql), values)).scalar() or 0)


async def test_a_ticket_is_filed_acknowledged_routed_and_readable(complaints_stub: ComplaintServiceStub, customer: str):
    filed = await file(complaints_stub, customer)
    assert filed.state == complaint_pb2.COMPLAINT_STATE_ACKNOWLEDGED
    assert filed.department == "departments/customer-care"
    assert filed.priority == complaint_pb2.PRIORITY_MEDIUM
    assert filed.sla.HasField("first_response_due_time") and not filed.sla.paused
    got = await complaints_stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)
    assert (got.description, got.customer, got.etag) == (filed.description, customer, filed.etag)


async def test_create_with_the_same_request_id_files_once_and_returns_the_first_answer(
    complaints_stub: ComplaintServiceStub, customer: str, complaints_engine: AsyncEngine
):
    request = complaint_service_pb2.CreateComplaintRequest(complaint=ticket(customer), request_id=request_id())
    first = await complaints_stub.CreateComplaint(request, timeout=10)
    again = await complaints_stub.CreateComplaint(request, timeout=10)
    assert again == first
    customer_id = uuid.UUID(customer.removeprefix("customers/"))
    assert await _count(complaints_engine, "SELECT count(*) FROM complaints WHERE customer_id = :c", c=customer_id) == 1


async def test_the_same_request_id_with_another_request_is_invalid_argument(
    complaints_stub: ComplaintServiceStub, customer: str
):
    rid = request_id()
    await complaints_stub.CreateComplaint(
        complaint_service_pb2.CreateComplaintRequest(complaint=ticket(customer), request_id=rid), timeout=10
    )
    code, error = await failure(
        complaints_stub.CreateComplaint(
            complaint_service_pb2.CreateComplaintRequest(
                complaint=ticket(customer, description="another"), request_id=rid
            ),
            timeout=10,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")


async def test_an_unknown_customer_is_not_found_and_writes_nothing(
    complaints_stub: ComplaintServiceStub, complaints_engine: AsyncEngine
):
    stranger = f"customers/{uuid.uuid4()}"
    before = await _count(complaints_engine, "SELECT count(*) FROM complaints")
    code, error = await failure(
        complaints_stub.CreateComplaint(
            complaint_service_pb2.CreateComplaintRequest(complaint=ticket(stranger), request_id=request_id()),
            timeout=10,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.NOT_FOUND, "CUSTOMER_NOT_FOUND")
    assert await _count(complaints_engine, "SELECT count(*) FROM complaints") == before


async def test_bad_input_names_every_bad_field_and_writes_nothing(
    complaints_stub: ComplaintServiceStub, customer: str, complaints_engine: AsyncEngine
):
    before = await _count(complaints_engine, "SELECT count(*) FROM complaints")
    cases = {
        "complaint.description": ticket(customer, description="   "),
        "complaint.category": ticket(customer, category=99),
        "complaint.channel": ticket(customer, channel=0),
    }
    for field, bad in cases.items():
        code, error = await failure(
            complaints_stub.CreateComplaint(
                complaint_service_pb2.CreateComplaintRequest(complaint=bad, request_id=request_id()), timeout=10
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert field in [v.field for v in error.violations], field  # type: ignore[attr-defined]
    code, error = await failure(
        complaints_stub.CreateComplaint(
            complaint_service_pb2.CreateComplaintRequest(
                complaint=ticket(customer, description="ʻ" * 4001), request_id=request_id()
            ),
            timeout=10,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "4000" in error.message
    assert await _count(complaints_engine, "SELECT count(*) FROM complaints") == before


async def test_a_transition_not_in_the_table_is_failed_precondition_naming_from_and_to(
    complaints_stub: ComplaintServiceStub, customer: str
):
    filed = await file(complaints_stub, customer)
    code, error = await failure(
        complaints_stub.AcceptResolution(
            complaint_service_pb2.AcceptResolutionRequest(name=filed.name, request_id=request_id()), timeout=5
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TRANSITION_NOT_ALLOWED")
    assert (error.metadata["from_state"], error.metadata["to_state"]) == ("acknowledged", "closed")
    got = await complaints_stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)
    assert got.etag == filed.etag


async def test_of_concurrent_transitions_of_one_ticket_exactly_one_wins(
    complaints_stub: ComplaintServiceStub, customer: str
):
    filed = await file(complaints_stub, customer)
    starts = [
        complaints_stub.StartComplaint(
            complaint_service_pb2.StartComplaintRequest(name=filed.name, request_id=request_id()), timeout=20
        )
        for _ in range(6)
    ]
    rejects = [
        complaints_stub.RejectComplaint(
            complaint_service_pb2.RejectComplaintRequest(name=filed.name, request_id=request_id()), timeout=20
        )
        for _ in range(6)
    ]
    results = await asyncio.gather(*starts, *rejects, return_exceptions=True)
    won = [r for r in results if isinstance(r, complaint_pb2.Complaint)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert all(e.code() == grpc.StatusCode.FAILED_PRECONDITION for e in lost) and len(lost) == 11
    history = await complaints_stub.ListHistory(complaint_service_pb2.ListHistoryRequest(parent=filed.name), timeout=5)
    assert len(history.entries) == 2


async def test_history_keeps_each_change_with_its_reason_and_actor(
    complaints_stub: ComplaintServiceStub, customer: str
):
    filed = await file(complaints_stub, customer)
    await complaints_stub.StartComplaint(
        complaint_service_pb2.StartComplaintRequest(name=filed.name, reason="on it", request_id=request_id()),
        timeout=5,
        metadata=[("x-crm-caller-subject", "agent-dilnoza"), ("x-crm-caller-kind", "employee")],
    )
    await complaints_stub.AwaitCustomer(
        complaint_service_pb2.AwaitCustomerRequest(name=filed.name, reason="need the invoice", request_id=request_id()),
        timeout=5,
    )
    history = await complaints_stub.ListHistory(complaint_service_pb2.ListHistoryRequest(parent=filed.name), timeout=5)
    moves = [(e.from_state, e.to_state, e.reason) for e in history.entries[1:]]
    assert moves == [
        (complaint_pb2.COMPLAINT_STATE_ACKNOWLEDGED, complaint_pb2.COMPLAINT_STATE_IN_PROGRESS, "on it"),
        (complaint_pb2.COMPLAINT_STATE_IN_PROGRESS, complaint_pb2.COMPLAINT_STATE_PENDING, "need the invoice"),
    ]
    assert history.entries[1].actor == "agent-dilnoza"


async def test_update_changes_only_the_masked_fields_and_a_stale_etag_is_aborted(
    complaints_stub: ComplaintServiceStub, customer: str
):
    filed = await file(complaints_stub, customer)
    change = complaint_pb2.Complaint(
        name=filed.name, etag=filed.etag, severity=complaint_pb2.SEVERITY_CRITICAL, description="ignored"
    )
    updated = await complaints_stub.UpdateComplaint(
        complaint_service_pb2.UpdateComplaintRequest(
            complaint=change, update_mask=field_mask_pb2.FieldMask(paths=["severity"]), request_id=request_id()
        ),
        timeout=5,
    )
    assert (updated.severity, updated.description) == (complaint_pb2.SEVERITY_CRITICAL, filed.description)
    assert updated.etag != filed.etag
    code, error = await failure(
        complaints_stub.UpdateComplaint(
            complaint_service_pb2.UpdateComplaintRequest(
                complaint=change, update_mask=field_mask_pb2.FieldMask(paths=["severity"]), request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")


async def test_list_filters_by_customer_and_state_a_page_at_a_time(
    complaints_stub: ComplaintServiceStub, customer: str, complaints_clock: ManualClock
):
    names = []
    for _ in range(5):
        names.append((await file(complaints_stub, customer)).name)
        complaints_clock.advance(timedelta(seconds=1))
    await start(complaints_stub, names[0])
    seen: list[str] = []
    token = ""
    while True:
        page = await complaints_stub.ListComplaints(
            complaint_service_pb2.ListComplaintsRequest(customer=customer, page_size=2, page_token=token), timeout=5
        )
        seen.extend(c.name for c in page.complaints)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(names))
    started = await complaints_stub.ListComplaints(
        complaint_service_pb2.ListComplaintsRequest(customer=customer, state=complaint_pb2.COMPLAINT_STATE_IN_PROGRESS),
        timeout=5,
    )
    assert [c.name for c in started.complaints] == [names[0]]


async def test_a_page_token_with_another_filter_is_invalid_argument(
    complaints_stub: ComplaintServiceStub, customer: str
):
    for _ in range(2):
        await file(complaints_stub, customer)
    page = await complaints_stub.ListComplaints(
        complaint_service_pb2.ListComplaintsRequest(customer=customer, page_size=1), timeout=5
    )
    code, _ = await failure(
        complaints_stub.ListComplaints(
            complaint_service_pb2.ListComplaintsRequest(page_size=1, page_token=page.next_page_token), timeout=5
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_merged_duplicate_ends_merged_and_its_notes_follow_the_master(
    complaints_stub: ComplaintServiceStub, customer: str
):
    master, duplicate = await file(complaints_stub, customer), await file(complaints_stub, customer)
    await complaints_stub.CreateNote(
        complaint_service_pb2.CreateNoteRequest(
            parent=duplicate.name,
            note=complaint_pb2.Note(text="Customer called again", visibility=complaint_pb2.NOTE_VISIBILITY_INTERNAL),
            request_id=request_id(),
        ),
        timeout=5,
    )
    merged = await complaints_stub.MergeComplaint(
        complaint_service_pb2.MergeComplaintRequest(
            name=duplicate.name, master=master.name, reason="same charge", request_id=request_id()
        ),
        timeout=5,
    )
    assert (merged.state, merged.merged_into) == (complaint_pb2.COMPLAINT_STATE_MERGED, master.name)
    notes = await complaints_stub.ListNotes(complaint_service_pb2.ListNotesRequest(parent=master.name), timeout=5)
    assert [n.text for n in notes.notes] == ["Customer called again"]
    code, _ = await failure(start(complaints_stub, duplicate.name))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


async def test_linking_a_parent_below_its_child_is_refused_as_a_cycle(
    complaints_stub: ComplaintServiceStub, customer: str
):
    parent, child = await file(complaints_stub, customer), await file(complaints_stub, customer)
    linked = await complaints_stub.LinkComplaint(
        complaint_service_pb2.LinkComplaintRequest(name=child.name, parent=parent.name, request_id=request_id()),
        timeout=5,
    )
    assert linked.parent == parent.name
    code, error = await failure(
        complaints_stub.LinkComplaint(
            complaint_service_pb2.LinkComplaintRequest(name=parent.name, parent=child.name, request_id=request_id()),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "LINK_CYCLE")
