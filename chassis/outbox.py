"""The transactional outbox: events written in the same transaction as the change they announce.

Rows get their feed `position` from the sequencer, which numbers committed rows in the order it
sees them, under an advisory lock, so positions only ever grow and a reader that resumes after a
position never misses an event. Events of one aggregate keep their order because a change to an
aggregate writes its event after taking the aggregate's row lock. The columns follow the shape
Debezium's outbox event router reads (id, aggregatetype, aggregateid, type, payload).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from opentelemetry import trace
from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, String, Table, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.background import RepeatingTask
from chassis.database import Database, rows_affected

# Any fixed number shared by every replica of a service: only one numbers rows at a time.
_SEQUENCER_LOCK = 0x0C7B0C5E
SEQUENCE_BATCH = 5000


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table (created by each producing service's migration, see `OUTBOX_DDL`)."""
    return Table(
        "outbox",
        metadata,
        Column("id", UUID(as_uuid=True), primary_key=True),
        Column("aggregatetype", String, nullable=False),
        Column("aggregateid", String, nullable=False),
        Column("type", String, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("trace_id", String, nullable=False),
        Column("create_time", DateTime(timezone=True), nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("position", BigInteger),
    )


OUTBOX_AGGREGATE_INDEX = "CREATE INDEX IF NOT EXISTS outbox_aggregate ON outbox (aggregateid)"
"""Finds one aggregate's events without reading the whole outbox (erasure); part of a producer's schema."""

OUTBOX_PRUNED_DDL = """
    CREATE TABLE IF NOT EXISTS outbox_pruned (
        type text PRIMARY KEY,
        through_position bigint NOT NULL,
        prune_time timestamptz NOT NULL
    )
    """
"""Per event type, the highest position pruned from the outbox, so that the feed refuses a reader that
would miss one (`chassis.retention`); part of a producer's schema."""

OUTBOX_DDL = (
    """
    CREATE TABLE outbox (
        id uuid PRIMARY KEY,
        aggregatetype text NOT NULL,
        aggregateid text NOT NULL,
        type text NOT NULL,
        payload bytea NOT NULL,
        trace_id text NOT NULL DEFAULT '',
        create_time timestamptz NOT NULL DEFAULT now(),
        seq bigint GENERATED ALWAYS AS IDENTITY,
        position bigint
    )
    """,
    "CREATE UNIQUE INDEX outbox_position ON outbox (position)",
    "CREATE INDEX outbox_unsequenced ON outbox (seq) WHERE position IS NULL",
    OUTBOX_AGGREGATE_INDEX,
    OUTBOX_PRUNED_DDL,
)
"""Statements a producing service's migration runs to create its outbox."""


@dataclass(frozen=True)
class NewEvent:
    """An event to write: what it is about and its payload message."""

    aggregate_type: AggregateType
    aggregate_id: str
    payload: Message


async def append_event(
    session: AsyncSession,
    *,
    aggregate_type: AggregateType,
    aggregate_id: str,
    payload: Message,
    now: datetime | None = None,
) -> uuid.UUID:
    """Writes an event into the outbox within the caller's transaction; returns its id."""
    (event_id,) = await append_events(session, [NewEvent(aggregate_type, aggregate_id, payload)], now=now)
    return event_id


async def append_events(
    session: AsyncSession, events: Sequence[NewEvent], *, now: datetime | None = None
) -> list[uuid.UUID]:
    """Writes several events in one round trip, in order, within the caller's transaction."""
    if not events:
        return []
    context = trace.get_current_span().get_span_context()
    trace_id = format(context.trace_id, "032x") if context.is_valid else ""
    create_time = now or datetime.now(UTC)
    ids = [uuid.uuid4() for _ in events]
    # One statement of arrays whatever the number of events (no statement per event), inserted in
    # their order, so that their sequence numbers follow it.
    await session.execute(
        text(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, trace_id, create_time) "
            "SELECT e.id, e.aggregate_type, e.aggregate_id, e.type, e.payload, :trace_id, :create_time "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:aggregate_types AS text[]), CAST(:aggregate_ids AS text[]), "
            "CAST(:types AS text[]), CAST(:payloads AS bytea[])) "
            "WITH ORDINALITY AS e(id, aggregate_type, aggregate_id, type, payload, position) ORDER BY e.position"
        ),
        {
            "ids": ids,
            "aggregate_types": [str(event.aggregate_type) for event in events],
            "aggregate_ids": [event.aggregate_id for event in events],
            "types": [event.payload.DESCRIPTOR.full_name for event in events],
            "payloads": [event.payload.SerializeToString(deterministic=True) for event in events],
            "trace_id": trace_id,
            "create_time": create_time,
        },
    )
    return ids


async def erase_aggregate_payloads(session: AsyncSession, *, aggregate_type: AggregateType, aggregate_id: str) -> int:
    """Empties the payloads of an aggregate's events within the caller's transaction (right to be
    forgotten); returns how many. The envelopes stay, so the feed keeps its positions without holes,
    and an empty payload still parses as the (default) message of its type."""
    result = await session.execute(
        text(
            "UPDATE outbox SET payload = ''::bytea "
            "WHERE aggregateid = :aggregate_id AND aggregatetype = :aggregate_type AND payload <> ''::bytea"
        ),
        {"aggregate_id": aggregate_id, "aggregate_type": aggregate_type},
    )
    return rows_affected(result)


async def sequence_pending(database: Database) -> int:
    """Gives feed positions to committed events that have none, in insertion order; returns how many."""
    async with database.transaction() as session:
        locked = (
            await session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _SEQUENCER_LOCK})
        ).scalar()
        if not locked:
            return 0
        result = await session.execute(
            text(
                """
                WITH last AS (SELECT coalesce(max(position), 0) AS position FROM outbox),
                     pending AS (
                         SELECT id, row_number() OVER (ORDER BY seq) AS n
                         FROM (SELECT id, seq FROM outbox WHERE position IS NULL ORDER BY seq LIMIT :batch) AS p
                     )
                UPDATE outbox SET position = last.position + pending.n
                FROM pending, last
                WHERE outbox.id = pending.id
                """
            ),
            {"batch": SEQUENCE_BATCH},
        )
        return rows_affected(result)


def outbox_sequencer(database: Database, interval_seconds: float = 0.05) -> RepeatingTask:
    """Background task of a producing service that keeps numbering new events."""

    async def number_events() -> bool:
        return await sequence_pending(database) >= SEQUENCE_BATCH

    return RepeatingTask("outbox-sequencer", number_events, interval_seconds)
