"""The customer service's events: one per committed change, in commit order, served by its feed."""

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.database import Database, create_engine
from chassis.outbox import append_event
from chassis.server import ServiceServer
from chassis.settings import DatabaseSettings, Environment
from crm.common.v1 import events_pb2
from crm.common.v1.events_pb2_grpc import EventFeedServiceStub
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1 import events_pb2 as customer_events
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.customer.app import CUSTOMER
from services.customer.settings import CustomerSettings
from tests.event_support import (
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    SUBSCRIPTION_CHANGED,
    committed_events,
    feed_end,
    follow_events,
    read_feed,
    unpack,
)
from tests.support import create_request, failure, line, person, request_id

CreateLine = customer_service_pb2.CreateSubscriptionRequest


def rename(name: str, middle_name: str) -> customer_service_pb2.UpdateCustomerRequest:
    return customer_service_pb2.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=name, individual=customer_pb2.Individual(middle_name=middle_name)),
        update_mask=field_mask_pb2.FieldMask(paths=["individual.middle_name"]),
    )


def activate(name: str, rid: str | None = None) -> customer_service_pb2.ChangeCustomerStatusRequest:
    return customer_service_pb2.ChangeCustomerStatusRequest(
        name=name, status=customer_pb2.CUSTOMER_STATUS_ACTIVE, request_id=rid or request_id()
    )


# One event per committed change --------------------------------------------------------------------


async def test_a_created_customer_is_announced_with_the_customer_as_payload(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    start = await feed_end(customer_engine)
    created = await customer_stub.CreateCustomer(create_request(person("Dilnoza", "Yusupova")), timeout=5)
    [event] = await follow_events(customer_channel, after=start, count=1, aggregate_id=created.name)
    assert event.event_type == CUSTOMER_CREATED
    assert event.aggregate_type == "customer"
    assert event.payload.type_url == f"type.googleapis.com/{CUSTOMER_CREATED}"
    assert unpack(event, customer_events.CustomerCreated()).customer == created  # type: ignore[attr-defined]
    assert uuid.UUID(event.event_id) and event.position > start
    assert event.event_time.seconds > 0
    assert await committed_events(customer_engine, created.name) == [CUSTOMER_CREATED]


async def test_a_profile_update_is_announced_as_customer_updated(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    created = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    start = await feed_end(customer_engine)
    updated = await customer_stub.UpdateCustomer(rename(created.name, "Anvarovich"), timeout=5)
    [event] = await follow_events(customer_channel, after=start, count=1, aggregate_id=created.name)
    assert event.event_type == CUSTOMER_UPDATED
    assert unpack(event, customer_events.CustomerUpdated()).customer == updated  # type: ignore[attr-defined]
    assert await committed_events(customer_engine, created.name) == [CUSTOMER_CREATED, CUSTOMER_UPDATED]


async def test_a_status_change_is_announced_as_customer_updated(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    created = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    start = await feed_end(customer_engine)
    active = await customer_stub.ChangeCustomerStatus(activate(created.name), timeout=5)
    [event] = await follow_events(customer_channel, after=start, count=1, aggregate_id=created.name)
    payload = unpack(event, customer_events.CustomerUpdated())
    assert payload.customer == active  # type: ignore[attr-defined]
    assert payload.customer.status == customer_pb2.CUSTOMER_STATUS_ACTIVE  # type: ignore[attr-defined]
    assert await committed_events(customer_engine, created.name) == [CUSTOMER_CREATED, CUSTOMER_UPDATED]


async def test_a_line_created_and_changed_is_announced_on_its_customer(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    customer = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    start = await feed_end(customer_engine)
    created = await customer_stub.CreateSubscription(
        CreateLine(parent=customer.name, subscription=line(), request_id=request_id()), timeout=5
    )
    changed = await customer_stub.UpdateSubscription(
        customer_service_pb2.UpdateSubscriptionRequest(
            subscription=customer_pb2.Subscription(name=created.name, tariff_plan_id="plans/uz-max-30gb"),
            update_mask=field_mask_pb2.FieldMask(paths=["tariff_plan_id"]),
        ),
        timeout=5,
    )
    events = await follow_events(customer_channel, after=start, count=2, aggregate_id=customer.name)
    assert [e.event_type for e in events] == [SUBSCRIPTION_CHANGED, SUBSCRIPTION_CHANGED]
    lines = [unpack(e, customer_events.SubscriptionChanged()).subscription for e in events]  # type: ignore[attr-defined]
    assert lines == [created, changed]
    assert await committed_events(customer_engine, customer.name) == [
        CUSTOMER_CREATED,
        SUBSCRIPTION_CHANGED,
        SUBSCRIPTION_CHANGED,
    ]


async def test_a_replayed_request_announces_nothing_more(
    customer_stub: CustomerServiceStub, customer_engine: AsyncEngine
):
    create = create_request(person())
    created = await customer_stub.CreateCustomer(create, timeout=5)
    assert await customer_stub.CreateCustomer(create, timeout=5) == created
    status_change = activate(created.name)
    await customer_stub.ChangeCustomerStatus(status_change, timeout=5)
    await customer_stub.ChangeCustomerStatus(status_change, timeout=5)
    add_line = CreateLine(parent=created.name, subscription=line(), request_id=request_id())
    await customer_stub.CreateSubscription(add_line, timeout=5)
    await customer_stub.CreateSubscription(add_line, timeout=5)
    assert await committed_events(customer_engine, created.name) == [
        CUSTOMER_CREATED,
        CUSTOMER_UPDATED,
        SUBSCRIPTION_CHANGED,
    ]


async def test_a_rejected_change_announces_nothing(customer_stub: CustomerServiceStub, customer_engine: AsyncEngine):
    created = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    blank_name = customer_service_pb2.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=created.name, individual=customer_pb2.Individual(given_name=" ")),
        update_mask=field_mask_pb2.FieldMask(paths=["individual.given_name"]),
    )
    code, _ = await failure(customer_stub.UpdateCustomer(blank_name, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # Refused after the customer's row was locked: the transaction had started its work.
    suspend = customer_service_pb2.ChangeCustomerStatusRequest(
        name=created.name, status=customer_pb2.CUSTOMER_STATUS_SUSPENDED, request_id=request_id()
    )
    code, error = await failure(customer_stub.ChangeCustomerStatus(suspend, timeout=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "STATUS_TRANSITION_NOT_ALLOWED"
    assert await committed_events(customer_engine, created.name) == [CUSTOMER_CREATED]


async def test_an_event_of_a_rolled_back_transaction_is_never_written(
    customer_database_url: str, customer_engine: AsyncEngine
):
    database = Database(create_engine(DatabaseSettings(url=customer_database_url), application_name="rollback-test"))
    aggregate = f"customers/{uuid.uuid4()}"
    try:
        with pytest.raises(RuntimeError):
            async with database.transaction() as session:
                await append_event(
                    session,
                    aggregate_type="customer",
                    aggregate_id=aggregate,
                    payload=customer_events.CustomerErased(customer=aggregate),
                )
                raise RuntimeError("the change failed after its event was written")
    finally:
        await database.close()
    async with customer_engine.connect() as connection:
        written = await connection.execute(text("SELECT count(*) FROM outbox WHERE aggregateid = :a"), {"a": aggregate})
        assert written.scalar_one() == 0


# Order -------------------------------------------------------------------------------------------


async def test_each_customers_events_arrive_in_commit_order_under_concurrent_changes(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    customers = [(await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name for _ in range(20)]
    start = await feed_end(customer_engine)
    await asyncio.gather(
        *(
            customer_stub.UpdateCustomer(rename(name, f"Middle {round_}"), timeout=30)
            for round_ in range(10)
            for name in customers
        )
    )
    events = await follow_events(customer_channel, after=start, count=200, event_types=[CUSTOMER_UPDATED])
    positions = [e.position for e in events]
    assert positions == sorted(set(positions))
    versions: dict[str, list[str]] = defaultdict(list)
    for event in events:
        versions[event.aggregate_id].append(unpack(event, customer_events.CustomerUpdated()).customer.etag)  # type: ignore[attr-defined]
    assert set(versions) == set(customers)
    for etags in versions.values():
        assert etags == [f'W/"{version}"' for version in range(2, 12)]


# The feed ------------------------------------------------------------------------------------------


async def test_a_following_stream_delivers_an_event_committed_after_it_opened(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    request = events_pb2.StreamEventsRequest(
        after_position=await feed_end(customer_engine), follow=True, event_types=[CUSTOMER_CREATED]
    )
    call = EventFeedServiceStub(customer_channel).StreamEvents(request, timeout=10)
    try:
        # The stream is open once the server has had time to read the (empty) first page.
        await asyncio.sleep(0.3)
        created = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
        delivered = [event async for event in _until(call, created.name)]
    finally:
        call.cancel()
    assert delivered[-1].aggregate_id == created.name


async def test_resuming_after_a_position_continues_without_gaps_or_repeats(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    start = await feed_end(customer_engine)
    names = [(await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name for _ in range(4)]
    await follow_events(customer_channel, after=start, count=1, aggregate_id=names[-1])
    everything = await read_feed(customer_channel, after=start)
    assert [e.position for e in everything] == list(range(start + 1, start + 1 + len(everything)))
    first_two = (await read_feed(customer_channel, after=start))[:2]
    rest = await read_feed(customer_channel, after=first_two[-1].position)
    resumed = [e.event_id for e in first_two + rest]
    assert resumed[: len(everything)] == [e.event_id for e in everything]
    assert len(resumed) == len(set(resumed))


async def test_an_event_types_filter_sends_only_those_types(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    start = await feed_end(customer_engine)
    customer = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    created_line = await customer_stub.CreateSubscription(
        CreateLine(parent=customer.name, subscription=line(), request_id=request_id()), timeout=5
    )
    await follow_events(customer_channel, after=start, count=2, aggregate_id=customer.name)
    lines_only = await read_feed(customer_channel, after=start, event_types=[SUBSCRIPTION_CHANGED])
    assert {e.event_type for e in lines_only} == {SUBSCRIPTION_CHANGED}
    announced = [unpack(e, customer_events.SubscriptionChanged()).subscription.name for e in lines_only]  # type: ignore[attr-defined]
    assert created_line.name in announced


async def test_a_negative_position_is_invalid_argument(customer_channel: grpc.aio.Channel):
    request = events_pb2.StreamEventsRequest(after_position=-1)
    code, error = await failure(read_all(EventFeedServiceStub(customer_channel).StreamEvents(request, timeout=5)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["after_position"]  # type: ignore[attr-defined]


async def test_following_streams_end_as_unavailable_when_the_server_stops(customer_database_url: str):
    settings = CustomerSettings.from_environment(
        Environment(
            {
                "CUSTOMER_DATABASE_URL": customer_database_url,
                "CUSTOMER_GRPC_ADDRESS": "127.0.0.1:0",
                "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
                "CUSTOMER_SHUTDOWN_GRACE_SECONDS": "30",
            }
        )
    )
    server: ServiceServer = CUSTOMER.build_server(settings)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        request = events_pb2.StreamEventsRequest(follow=True, event_types=["crm.example.v1.NeverSent"])
        call = EventFeedServiceStub(channel).StreamEvents(request, timeout=30)
        await asyncio.sleep(0.3)
        # Well within the 30 s grace: the stream does not hold the shutdown.
        async with asyncio.timeout(10):
            await server.stop()
        code, error = await failure(read_all(call))
    assert code == grpc.StatusCode.UNAVAILABLE and error.reason == "FEED_STOPPING"


async def read_all(call: grpc.aio.UnaryStreamCall) -> list[events_pb2.Event]:  # type: ignore[type-arg]
    return [event async for event in call]


async def _until(call: grpc.aio.UnaryStreamCall, aggregate_id: str) -> AsyncIterator[events_pb2.Event]:  # type: ignore[type-arg]
    """The stream's events up to and including the first one about `aggregate_id`."""
    async for event in call:
        yield event
        if event.aggregate_id == aggregate_id:
            return
