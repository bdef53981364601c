"""Reading a service's event feed and outbox in tests."""

import asyncio
from collections.abc import Sequence

import grpc
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm.common.v1 import events_pb2
from crm.common.v1.events_pb2_grpc import EventFeedServiceStub
from crm.customer.v1 import events_pb2 as customer_events

CUSTOMER_CREATED = customer_events.CustomerCreated.DESCRIPTOR.full_name
CUSTOMER_UPDATED = customer_events.CustomerUpdated.DESCRIPTOR.full_name
CUSTOMER_ERASED = customer_events.CustomerErased.DESCRIPTOR.full_name
SUBSCRIPTION_CHANGED = customer_events.SubscriptionChanged.DESCRIPTOR.full_name
CUSTOMER_CHANGE_TYPES = (CUSTOMER_CREATED, CUSTOMER_UPDATED, CUSTOMER_ERASED, SUBSCRIPTION_CHANGED)
"""What the customer directory announces itself (segment changes come later, from the evaluator)."""


async def feed_end(engine: AsyncEngine, timeout_seconds: float = 10.0) -> int:
    """The highest position, once every event committed so far has been numbered (0 for an empty feed)."""
    async with asyncio.timeout(timeout_seconds), engine.connect() as connection:
        while True:
            row = (
                await connection.execute(
                    text(
                        "SELECT coalesce(max(position), 0) AS last, "
                        "EXISTS (SELECT FROM outbox WHERE position IS NULL) AS unnumbered FROM outbox"
                    )
                )
            ).one()
            await connection.rollback()
            if not row.unnumbered:
                return int(row.last)
            await asyncio.sleep(0.02)


async def follow_events(
    channel: grpc.aio.Channel,
    *,
    after: int,
    count: int,
    aggregate_id: str | None = None,
    event_types: Sequence[str] = CUSTOMER_CHANGE_TYPES,
    timeout_seconds: float = 10.0,
) -> list[events_pb2.Event]:
    """The first `count` events after `after` (of one aggregate, when given), waiting for them."""
    request = events_pb2.StreamEventsRequest(after_position=after, follow=True, event_types=list(event_types))
    call = EventFeedServiceStub(channel).StreamEvents(request, timeout=timeout_seconds)
    events: list[events_pb2.Event] = []
    try:
        async for event in call:
            if aggregate_id is None or event.aggregate_id == aggregate_id:
                events.append(event)
            if len(events) == count:
                return events
    finally:
        call.cancel()
    raise AssertionError(f"the feed ended after {len(events)} of {count} events")


async def read_feed(
    channel: grpc.aio.Channel, *, after: int, event_types: Sequence[str] = ()
) -> list[events_pb2.Event]:
    """Every event after `after` up to the current end of the feed."""
    request = events_pb2.StreamEventsRequest(after_position=after, event_types=list(event_types))
    return [event async for event in EventFeedServiceStub(channel).StreamEvents(request, timeout=10)]


async def committed_events(
    engine: AsyncEngine, aggregate_id: str, event_types: Sequence[str] = CUSTOMER_CHANGE_TYPES
) -> list[str]:
    """Types of the events of an aggregate in the outbox, numbered or not, in the order written."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT type FROM outbox WHERE aggregateid = :aggregate AND type = ANY(:types) ORDER BY seq"),
            {"aggregate": aggregate_id, "types": list(event_types)},
        )
        return [row.type for row in rows]


def unpack(event: events_pb2.Event, message: Message) -> Message:
    """The event's payload unpacked into `message`."""
    assert event.payload.Unpack(message), f"{event.event_type} does not hold a {message.DESCRIPTOR.full_name}"
    return message
