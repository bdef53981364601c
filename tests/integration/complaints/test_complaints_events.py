"""The complaints service's own event feed, read through chassis' EventFeedService: each ticket's
events under its own aggregate in the order they happened, and a customer's erasure emptying the
payloads of every event of the customer's tickets while the envelopes keep their positions."""

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.database import Database
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.complaints.v1 import complaint_pb2, events_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1 import events_pb2 as customer_events_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.complaints import customer_events
from tests.event_support import feed_end, follow_events, read_feed, unpack
from tests.integration.complaints.builders import file, resolve, start
from tests.support import create_request, person

CREATED = events_pb2.ComplaintCreated.DESCRIPTOR.full_name
STATE_CHANGED = events_pb2.ComplaintStateChanged.DESCRIPTOR.full_name
WARNED = events_pb2.ComplaintSlaWarning.DESCRIPTOR.full_name
BREACHED = events_pb2.ComplaintSlaBreached.DESCRIPTOR.full_name
SETTLED = events_pb2.CompensationSettled.DESCRIPTOR.full_name
COMPLAINT_EVENT_TYPES = (CREATED, STATE_CHANGED, WARNED, BREACHED, SETTLED)


async def _erase(database: Database, customer: str) -> None:
    event = common_events_pb2.Event(event_type=customer_events_pb2.CustomerErased.DESCRIPTOR.full_name)
    event.payload.Pack(customer_events_pb2.CustomerErased(customer=customer))
    async with database.transaction() as session:
        await customer_events.apply_customer_event(session, event)


async def _payload_sizes(engine: AsyncEngine, aggregate_id: str) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT length(payload) AS size FROM outbox WHERE aggregateid = :a ORDER BY seq"), {"a": aggregate_id}
        )
        return [int(row.size) for row in rows]


async def test_a_tickets_events_are_announced_in_order_under_the_complaint_aggregate(
    complaints_stub: ComplaintServiceStub,
    complaints_channel: grpc.aio.Channel,
    complaints_engine: AsyncEngine,
    customer: str,
):
    after = await feed_end(complaints_engine)
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    await resolve(complaints_stub, filed.name)
    events = await follow_events(
        complaints_channel, after=after, count=3, aggregate_id=filed.name, event_types=COMPLAINT_EVENT_TYPES
    )
    assert [(e.event_type, e.aggregate_type) for e in events] == [
        (CREATED, "complaint"),
        (STATE_CHANGED, "complaint"),
        (STATE_CHANGED, "complaint"),
    ]
    assert [e.position for e in events] == sorted(e.position for e in events)
    created = events_pb2.ComplaintCreated()
    unpack(events[0], created)
    assert (created.complaint.name, created.complaint.customer) == (filed.name, customer)
    assert created.complaint.description == filed.description
    moves = [events_pb2.ComplaintStateChanged() for _ in events[1:]]
    for event, move in zip(events[1:], moves, strict=True):
        unpack(event, move)
    assert [(m.from_state, m.to_state, m.customer) for m in moves] == [
        (complaint_pb2.COMPLAINT_STATE_ACKNOWLEDGED, complaint_pb2.COMPLAINT_STATE_IN_PROGRESS, customer),
        (complaint_pb2.COMPLAINT_STATE_IN_PROGRESS, complaint_pb2.COMPLAINT_STATE_RESOLVED, customer),
    ]


async def test_the_feed_filters_by_event_type(
    complaints_stub: ComplaintServiceStub,
    complaints_channel: grpc.aio.Channel,
    complaints_engine: AsyncEngine,
    customer: str,
):
    after = await feed_end(complaints_engine)
    filed = await file(complaints_stub, customer)
    await start(complaints_stub, filed.name)
    await feed_end(complaints_engine)
    events = await read_feed(complaints_channel, after=after, event_types=[STATE_CHANGED])
    assert [e.event_type for e in events if e.aggregate_id == filed.name] == [STATE_CHANGED]


async def test_erasure_empties_every_event_of_the_customers_tickets_and_no_one_elses(
    complaints_stub: ComplaintServiceStub,
    complaints_channel: grpc.aio.Channel,
    complaints_engine: AsyncEngine,
    complaints_database: Database,
    customer_stub: CustomerServiceStub,
    customer: str,
):
    other = (await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name
    after = await feed_end(complaints_engine)
    first, second = await file(complaints_stub, customer), await file(complaints_stub, customer)
    await start(complaints_stub, second.name)
    theirs = await file(complaints_stub, other)
    await feed_end(complaints_engine)
    before = {e.event_id: e.position for e in await read_feed(complaints_channel, after=after)}
    await _erase(complaints_database, customer)
    assert await _payload_sizes(complaints_engine, first.name) == [0]
    assert await _payload_sizes(complaints_engine, second.name) == [0, 0]
    assert all(await _payload_sizes(complaints_engine, theirs.name))
    served = await read_feed(complaints_channel, after=after)
    assert {e.event_id: e.position for e in served} == before
    erased = [e for e in served if e.aggregate_id in (first.name, second.name)]
    assert len(erased) == 3 and not [e for e in erased if e.payload.value]
    kept = events_pb2.ComplaintCreated()
    unpack(next(e for e in served if e.aggregate_id == theirs.name), kept)
    assert kept.complaint.description == theirs.description
