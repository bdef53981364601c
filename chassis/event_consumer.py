"""Reading another service's event feed so that each event takes effect exactly once.

The consumer keeps, in its OWN database, a cursor per (consumer, producer) and the ids of the events
it applied (tables from `CONSUMER_DDL`). Every event is applied in one transaction of that database:
record its id (when the id is there already, the handler is skipped), run the handler, advance the
cursor, commit. A crash at any point leaves either all three or none, and the next connection
resumes after the committed cursor: delivery is at least once, the effect exactly once. Several
replicas of one consumer may run at once; the applied ids keep them from applying an event twice.
Applied ids far below the cursor are pruned by the chassis (`chassis.retention`): no stream delivers them
again, so a cursor must never be moved back by more than that margin.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.channels import open_channel
from chassis.clock import SYSTEM_CLOCK, Clock
from chassis.database import Database
from chassis.event_feed import EVENT_FEED_SERVICE_NAME
from crm.common.v1 import events_pb2, events_pb2_grpc

log = logging.getLogger("crm.events")

UNREACHABLE_QUIETLY_SECONDS = 10.0
"""How long a feed may stay unreachable before each failed reconnection is a warning: a producer that
starts beside its consumers, or restarts, is not up for a moment (INFO until then)."""

APPLIED_EVENTS_POSITION_INDEX = (
    "CREATE INDEX IF NOT EXISTS applied_events_position ON applied_events (consumer, producer, position)"
)
"""Finds a consumer's applied ids far below its cursor without reading the whole table (`chassis.retention`)."""

CONSUMER_DDL = (
    """
    CREATE TABLE event_cursors (
        consumer text NOT NULL,
        producer text NOT NULL,
        position bigint NOT NULL,
        update_time timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, producer)
    )
    """,
    """
    CREATE TABLE applied_events (
        consumer text NOT NULL,
        event_id uuid NOT NULL,
        producer text NOT NULL,
        position bigint NOT NULL,
        apply_time timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    )
    """,
    APPLIED_EVENTS_POSITION_INDEX,
)
"""Statements a consuming service's migration runs to keep its cursors and applied event ids."""

EventHandler = Callable[[AsyncSession, events_pb2.Event], Awaitable[None]]
"""Applies one event's effect with the given session, inside the transaction that records it."""


class EventConsumer:
    """Applies the events of one producer's feed to the consumer's database, each exactly once."""

    def __init__(
        self,
        *,
        name: str,
        producer: str,
        feed: str | grpc.aio.Channel,
        database: Database,
        handler: EventHandler,
        event_types: Sequence[str] = (),
        stream_seconds: float = 60.0,
        initial_backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`name` identifies this consumer (its cursor and applied ids); `producer` names the feed;
        `feed` is the producer's `host:port` or an open channel to it; only `event_types` are read
        when given. A following call is renewed every `stream_seconds` (its deadline); after a
        failure the consumer waits from `initial_backoff_seconds`, doubling up to `max_backoff_seconds`;
        how long the feed has been unreachable is read on `clock`."""
        self.name = name
        self.producer = producer
        self._owns_channel = isinstance(feed, str)
        self._channel = open_channel(feed, service_names=[EVENT_FEED_SERVICE_NAME]) if isinstance(feed, str) else feed
        self._feed = events_pb2_grpc.EventFeedServiceStub(self._channel)
        self._database = database
        self._handler = handler
        self._event_types = list(event_types)
        self._stream_seconds = stream_seconds
        self._initial_backoff = initial_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._clock = clock
        self._stopped = asyncio.Event()
        self._call: grpc.aio.UnaryStreamCall[events_pb2.StreamEventsRequest, events_pb2.Event] | None = None

    async def run_until_stopped(self) -> None:
        """Follows the feed, applying events as they come, until `stop`; reconnects after failures."""
        backoff = self._initial_backoff
        failing_since: datetime | None = None  # since when every attempt failed; None while following
        while not self._stopped.is_set():
            try:
                await self._read(follow=True, timeout_seconds=self._stream_seconds)
                backoff = self._initial_backoff
                failing_since = None
            except asyncio.CancelledError:
                if self._stopped.is_set() and not _cancelled_from_outside():
                    return
                raise
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    # The call's planned end: renew it at once.
                    backoff = self._initial_backoff
                    failing_since = None
                    continue
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    # EVENTS_PRUNED: the producer no longer holds the events after the cursor; retrying
                    # cannot help until an operator decides how this consumer recovers.
                    log.error("event feed %s refused the cursor: %s", self.producer, error.details())
                else:
                    now = self._clock.now()
                    failing_since = now if failing_since is None else failing_since
                    unreachable_for = (now - failing_since).total_seconds()
                    unavailable = error.code() == grpc.StatusCode.UNAVAILABLE
                    quiet = unavailable and unreachable_for < UNREACHABLE_QUIETLY_SECONDS
                    log.log(
                        logging.INFO if quiet else logging.WARNING,
                        "event feed %s failed (%s); reconnecting",
                        self.producer,
                        error.code().name,
                        extra={"unreachable_seconds": round(unreachable_for, 1)},
                    )
                await self._pause(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            except Exception:
                log.warning("applying events of %s failed; retrying", self.producer, exc_info=True)
                await self._pause(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def stop(self) -> None:
        """Makes `run_until_stopped` return after the event being applied, if any."""
        self._stopped.set()
        if self._call is not None:
            self._call.cancel()

    async def catch_up(self, timeout_seconds: float = 30.0) -> int:
        """Applies every event up to the current end of the feed, then returns how many took effect
        (events applied before are not counted). Fails if the feed or the database fails."""
        return await self._read(follow=False, timeout_seconds=timeout_seconds)

    async def position(self) -> int:
        """The position of the last event this consumer got from the producer (0 before the first)."""
        async with self._database.transaction() as session:
            return await self._cursor(session)

    async def close(self) -> None:
        """Closes the channel the consumer opened itself."""
        if self._owns_channel:
            await self._channel.close()

    async def _read(self, *, follow: bool, timeout_seconds: float) -> int:
        async with self._database.transaction() as session:
            after = await self._cursor(session)
        request = events_pb2.StreamEventsRequest(after_position=after, follow=follow, event_types=self._event_types)
        self._call = self._feed.StreamEvents(request, timeout=timeout_seconds)
        if follow and self._stopped.is_set():
            self._call.cancel()
        applied = 0
        try:
            async for event in self._call:
                applied += await self._apply(event)
                if follow and self._stopped.is_set():
                    break
        finally:
            self._call.cancel()
            self._call = None
        return applied

    async def _apply(self, event: events_pb2.Event) -> int:
        """Records, applies and acknowledges one event in one transaction; 1 if it took effect now."""
        async with self._database.transaction() as session:
            first_time = (
                await session.execute(
                    text(
                        "INSERT INTO applied_events (consumer, event_id, producer, position) "
                        "VALUES (:consumer, :event_id, :producer, :position) "
                        "ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id"
                    ),
                    {
                        "consumer": self.name,
                        "event_id": uuid.UUID(event.event_id),
                        "producer": self.producer,
                        "position": event.position,
                    },
                )
            ).first() is not None
            if first_time:
                await self._handler(session, event)
            await session.execute(
                text(
                    "INSERT INTO event_cursors (consumer, producer, position) VALUES (:consumer, :producer, :position) "
                    "ON CONFLICT (consumer, producer) DO UPDATE "
                    "SET position = greatest(event_cursors.position, excluded.position), update_time = now()"
                ),
                {"consumer": self.name, "producer": self.producer, "position": event.position},
            )
        return 1 if first_time else 0

    async def _cursor(self, session: AsyncSession) -> int:
        position = (
            await session.execute(
                text("SELECT position FROM event_cursors WHERE consumer = :consumer AND producer = :producer"),
                {"consumer": self.name, "producer": self.producer},
            )
        ).scalar()
        return int(position or 0)

    async def _pause(self, seconds: float) -> None:
        """Waits before reconnecting; returns early when stopped."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopped.wait()
        except TimeoutError:
            return


def _cancelled_from_outside() -> bool:
    """Whether the running task itself is being cancelled (not only the call that `stop` cancelled)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
