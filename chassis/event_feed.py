"""A producer's outbox served as `crm.common.v1.EventFeedService`.

Events go out in position order after the caller's cursor, a page at a time: keyset reads on the
position index, so a page costs the same wherever the cursor stands and the outbox is never loaded
whole. Only numbered rows are served (the outbox sequencer numbers committed rows in commit order),
so a reader that resumes after a position it saw never misses an event. With `follow` the stream
stays open and polls for newly numbered events until the caller cancels or the server stops.
A reader that would miss an event pruned past the outbox retention (`chassis.retention`) gets
FAILED_PRECONDITION `EVENTS_PRUNED`, never a silent gap.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import BigInteger, Column, MetaData, Row, String, Table, func, select

from chassis.database import Database
from chassis.errors import FailedPrecondition, Unavailable, invalid_field
from chassis.outbox import outbox_table
from crm.common.v1 import events_pb2, events_pb2_grpc

EVENT_FEED_SERVICE_NAME = events_pb2.DESCRIPTOR.services_by_name["EventFeedService"].full_name
TYPE_URL_PREFIX = "type.googleapis.com/"

_outbox = outbox_table(MetaData())
_pruned = Table("outbox_pruned", MetaData(), Column("type", String), Column("through_position", BigInteger))


@dataclass(frozen=True)
class _Page:
    events: list[events_pb2.Event]
    resume_after: int
    """Where the next page starts: the last position read, or the end of the range scanned."""
    more: bool
    """Whether numbered events beyond `resume_after` exist already."""


class EventFeedServicer(events_pb2_grpc.EventFeedServiceServicer):
    """Serves the outbox of `database` as an event feed."""

    def __init__(
        self,
        database: Database,
        *,
        page_size: int = 500,
        scan_window: int = 5000,
        poll_interval_seconds: float = 0.1,
    ) -> None:
        self._database = database
        self._page_size = page_size
        # A type filter may match few rows: each read looks at a bounded range of positions.
        self._scan_window = scan_window
        self._poll_interval = poll_interval_seconds
        self._stopping = asyncio.Event()

    def stop_following(self) -> None:
        """Ends every following stream (UNAVAILABLE, so clients reconnect) and refuses to start new
        ones; called as the server stops accepting calls."""
        self._stopping.set()

    async def StreamEvents(
        self,
        request: events_pb2.StreamEventsRequest,
        context: "grpc.aio.ServicerContext[events_pb2.StreamEventsRequest, events_pb2.Event]",
    ) -> AsyncIterator[events_pb2.Event]:
        if request.after_position < 0:
            raise invalid_field("after_position", "must not be negative")
        after = request.after_position
        event_types = tuple(request.event_types)
        while True:
            if request.follow and self._stopping.is_set():
                raise Unavailable("FEED_STOPPING", "the server is stopping; reconnect and resume after your position")
            page = await self._read_page(after, event_types)
            for event in page.events:
                yield event
            after = page.resume_after
            if page.more:
                continue
            if not request.follow:
                return
            await self._wait_for_new_events()

    async def _read_page(self, after: int, event_types: Sequence[str]) -> _Page:
        async with self._database.transaction() as session:
            end = (await session.execute(select(func.max(_outbox.c.position)))).scalar() or 0
            if end <= after:
                return _Page([], after, more=False)
            # Never past the last number given: a higher one may still go to an event not yet numbered.
            scan_end = min(end, after + self._scan_window)
            query = select(_outbox).where(_outbox.c.position > after, _outbox.c.position <= scan_end)
            if event_types:
                query = query.where(_outbox.c.type.in_(event_types))
            rows = (await session.execute(query.order_by(_outbox.c.position).limit(self._page_size))).all()
            # Read after the rows: an event pruned before they were read is counted here.
            pruned = select(func.max(_pruned.c.through_position))
            if event_types:
                pruned = pruned.where(_pruned.c.type.in_(event_types))
            pruned_through = (await session.execute(pruned)).scalar() or 0
        if pruned_through > after:
            raise events_pruned(after, pruned_through)
        events = [event_from_row(row) for row in rows]
        if len(rows) == self._page_size:
            return _Page(events, rows[-1].position, more=True)
        return _Page(events, scan_end, more=scan_end < end)

    async def _wait_for_new_events(self) -> None:
        try:
            async with asyncio.timeout(self._poll_interval):
                await self._stopping.wait()
        except TimeoutError:
            return


def events_pruned(after: int, pruned_through: int) -> FailedPrecondition:
    """The feed's answer to a reader whose next events were pruned: it has to decide how to recover
    (rebuild from the producer's API, or accept the gap and resume after `pruned_through`)."""
    return FailedPrecondition(
        "EVENTS_PRUNED",
        f"events after position {after} up to {pruned_through} were pruned past the outbox retention",
        {"after_position": str(after), "pruned_through_position": str(pruned_through)},
    )


def event_from_row(row: Row[Any]) -> events_pb2.Event:
    """The envelope of one outbox row, its payload packed as `google.protobuf.Any`."""
    event_time = Timestamp()
    event_time.FromDatetime(row.create_time)
    return events_pb2.Event(
        event_id=str(row.id),
        position=row.position,
        event_type=row.type,
        event_time=event_time,
        aggregate_type=row.aggregatetype,
        aggregate_id=row.aggregateid,
        trace_id=row.trace_id,
        payload=any_pb2.Any(type_url=TYPE_URL_PREFIX + row.type, value=row.payload),
    )
