"""The service's scheduled work as the clock moves, in a department open around the clock in UTC:
a pending ticket is cancelled once the customer has not answered for the configured business days
(5), a resolved ticket is closed after the configured silence (7 days), and the SLA warning is
announced once, on the service's own feed, when the configured share (0.8) of the resolution target
has passed."""

from datetime import UTC, datetime, time, timedelta

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import ManualClock
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, events_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.event_support import feed_end, follow_events, read_feed, unpack
from tests.integration.complaints.builders import (
    await_customer,
    create_department,
    customer_in,
    department,
    file,
    fresh_region,
    resolve,
    route_region_to,
    run_schedule,
    start,
)
from tests.integration.complaints.conftest import department_id

PENDING_BUSINESS_DAYS = 5
RESOLUTION_SILENCE = timedelta(days=7)
WARNED = events_pb2.ComplaintSlaWarning.DESCRIPTOR.full_name
BREACHED = events_pb2.ComplaintSlaBreached.DESCRIPTOR.full_name
STATE_CHANGED = events_pb2.ComplaintStateChanged.DESCRIPTOR.full_name


async def _customer_of_a_new_desk(
    stub: ComplaintServiceStub, customers: CustomerServiceStub, **targets: int
) -> tuple[str, str]:
    """A department open around the clock (with `targets`) that a region of its own is routed to;
    its name and a customer living there."""
    region, desk = fresh_region(), department_id()
    await create_department(stub, desk, department(**targets))
    await route_region_to(stub, region, f"departments/{desk}")
    return f"departments/{desk}", await customer_in(customers, region)


async def _get(stub: ComplaintServiceStub, name: str) -> complaint_pb2.Complaint:
    return await stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=name), timeout=5)


async def test_a_pending_ticket_is_cancelled_once_the_customer_is_silent_for_the_business_days(
    complaints_stub: ComplaintServiceStub,
    customer_stub: CustomerServiceStub,
    complaints_clock: ManualClock,
    complaints_channel: grpc.aio.Channel,
    complaints_engine: AsyncEngine,
):
    _, customer = await _customer_of_a_new_desk(complaints_stub, customer_stub)
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    waiting_since = complaints_clock.now()
    await await_customer(complaints_stub, filed.name)
    # Open every day: the fifth day after today ends at midnight UTC starting the sixth.
    deadline = datetime.combine(waiting_since.date() + timedelta(days=PENDING_BUSINESS_DAYS + 1), time(), UTC)
    after = await feed_end(complaints_engine)

    complaints_clock.set(deadline - timedelta(minutes=1))
    await run_schedule(complaints_stub)
    assert (await _get(complaints_stub, filed.name)).state == complaint_pb2.COMPLAINT_STATE_PENDING

    complaints_clock.set(deadline + timedelta(minutes=1))
    done = await run_schedule(complaints_stub)
    cancelled = await _get(complaints_stub, filed.name)
    assert done.pending_cancelled >= 1
    assert cancelled.state == complaint_pb2.COMPLAINT_STATE_CANCELLED
    assert cancelled.close_time.ToDatetime(UTC) == deadline + timedelta(minutes=1)
    history = await complaints_stub.ListHistory(complaint_service_pb2.ListHistoryRequest(parent=filed.name), timeout=5)
    last = history.entries[-1]
    assert (last.from_state, last.to_state, last.reason) == (
        complaint_pb2.COMPLAINT_STATE_PENDING,
        complaint_pb2.COMPLAINT_STATE_CANCELLED,
        f"the customer did not answer in {PENDING_BUSINESS_DAYS} business days",
    )
    (announced,) = await follow_events(
        complaints_channel, after=after, count=1, aggregate_id=filed.name, event_types=[STATE_CHANGED]
    )
    changed = events_pb2.ComplaintStateChanged()
    unpack(announced, changed)
    assert (changed.from_state, changed.to_state) == (
        complaint_pb2.COMPLAINT_STATE_PENDING,
        complaint_pb2.COMPLAINT_STATE_CANCELLED,
    )


async def test_a_resolved_ticket_is_closed_after_the_customers_silence(
    complaints_stub: ComplaintServiceStub, customer_stub: CustomerServiceStub, complaints_clock: ManualClock
):
    _, customer = await _customer_of_a_new_desk(complaints_stub, customer_stub)
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    resolved_at = complaints_clock.now()
    await resolve(complaints_stub, filed.name)

    complaints_clock.set(resolved_at + RESOLUTION_SILENCE - timedelta(minutes=1))
    await run_schedule(complaints_stub)
    assert (await _get(complaints_stub, filed.name)).state == complaint_pb2.COMPLAINT_STATE_RESOLVED

    complaints_clock.set(resolved_at + RESOLUTION_SILENCE + timedelta(minutes=1))
    done = await run_schedule(complaints_stub)
    closed = await _get(complaints_stub, filed.name)
    assert done.resolutions_closed >= 1
    assert (closed.state, closed.reopen_count) == (complaint_pb2.COMPLAINT_STATE_CLOSED, 0)
    history = await complaints_stub.ListHistory(complaint_service_pb2.ListHistoryRequest(parent=filed.name), timeout=5)
    last = history.entries[-1]
    assert (last.from_state, last.to_state, last.reason) == (
        complaint_pb2.COMPLAINT_STATE_RESOLVED,
        complaint_pb2.COMPLAINT_STATE_CLOSED,
        "the customer did not answer the resolution",
    )


async def test_the_sla_warning_is_announced_once_on_the_feed_at_its_share_of_the_target(
    complaints_stub: ComplaintServiceStub,
    customer_stub: CustomerServiceStub,
    complaints_clock: ManualClock,
    complaints_channel: grpc.aio.Channel,
    complaints_engine: AsyncEngine,
):
    desk, customer = await _customer_of_a_new_desk(
        complaints_stub, customer_stub, first_response_minutes=60, resolution_minutes=600
    )
    filed_at = complaints_clock.now()
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    after = await feed_end(complaints_engine)
    warning_due = filed_at + timedelta(minutes=600 * 0.8)

    complaints_clock.set(warning_due - timedelta(minutes=1))
    await run_schedule(complaints_stub)
    assert not (await _get(complaints_stub, filed.name)).sla.warned

    complaints_clock.set(warning_due + timedelta(minutes=1))
    await run_schedule(complaints_stub)
    await run_schedule(complaints_stub)
    (warning,) = await follow_events(
        complaints_channel, after=after, count=1, aggregate_id=filed.name, event_types=[WARNED]
    )
    announced = events_pb2.ComplaintSlaWarning()
    unpack(warning, announced)
    assert (announced.complaint, announced.department) == (filed.name, desk)
    assert announced.sla.elapsed.ToTimedelta() == timedelta(minutes=481)
    assert announced.sla.remaining.ToTimedelta() == timedelta(minutes=119)
    assert announced.sla.warned and not announced.sla.resolution_breached
    await feed_end(complaints_engine)
    sla_events = [
        e.event_type
        for e in await read_feed(complaints_channel, after=after, event_types=[WARNED, BREACHED])
        if e.aggregate_id == filed.name
    ]
    assert sla_events == [WARNED]
    assert (await _get(complaints_stub, filed.name)).sla.warned
