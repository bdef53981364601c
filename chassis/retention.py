"""Retention of the chassis' own tables, so that none of them only grows; the chassis prunes them for
every service (`Service.build` schedules the jobs), so that no service has to remember it.

What goes, and what that guarantees (the settings are `RetentionSettings`, `<PREFIX>_DATABASE_...`):

- `idempotency_keys`: a key once its `create_time` is older than the request-id retention
  (`REQUEST_ID_RETENTION_SECONDS`, 7 days). A retry with the same request_id within the retention gets
  the first answer; after it, the id is new again, at the latest one prune interval later.
- `applied_events`: a consumer's applied ids more than `APPLIED_EVENTS_MARGIN` positions (100,000)
  below its cursor. A stream opened now starts after the cursor, so it never delivers those again; the
  margin is for a replica whose stream opened from an older cursor (a stream lives at most a minute).
- `outbox`: events older than the outbox retention (`OUTBOX_RETENTION_SECONDS`, 30 days), from the
  lowest position up to the first younger one, never past what a local reader has read
  (`outbox_local_readers`, see `outbox_local_readers_ddl`) and never the newest event (the sequencer
  numbers on from it). The producer cannot see its consumers' cursors, which live in their own
  databases, so retention is by age, and the feed answers a reader that would miss a pruned event with
  FAILED_PRECONDITION `EVENTS_PRUNED` instead of skipping it (`outbox_pruned` keeps, per event type,
  the highest position pruned). With the feed on Kafka (Debezium's outbox router), consumers resume
  from the topic, so how far back they can go is the topic's retention; the outbox then needs to keep
  rows only for its local readers.

Each job prunes one table every `PRUNE_INTERVAL_SECONDS` (5 minutes), again at once while a batch came
back full; one statement deletes at most `PRUNE_BATCH_SIZE` rows (1,000), found through an index; an
advisory lock lets one replica prune a table at a time (worker processes run no background work);
"now" is the service's clock.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.background import RepeatingTask
from chassis.clock import Clock
from chassis.database import Database, rows_affected
from chassis.settings import RetentionSettings

# Fixed numbers shared by every replica of a service (beside the outbox sequencer's): one prunes at a time.
REQUEST_IDS_LOCK = 0x0C7B0C60
APPLIED_EVENTS_LOCK = 0x0C7B0C61
OUTBOX_LOCK = 0x0C7B0C62

_PRUNE_REQUEST_IDS = """
DELETE FROM idempotency_keys
WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE create_time < :cutoff ORDER BY create_time LIMIT :batch
))
AND create_time < :cutoff
"""

_PRUNE_APPLIED_EVENTS = """
DELETE FROM applied_events
WHERE ctid = ANY(ARRAY(
    SELECT below.ctid FROM event_cursors AS c
    CROSS JOIN LATERAL (
        SELECT ctid FROM applied_events
        WHERE consumer = c.consumer AND producer = c.producer AND position <= c.position - :margin
        ORDER BY position LIMIT :batch
    ) AS below
    LIMIT :batch
))
"""

_PRUNE_OUTBOX = """
WITH oldest AS (
    SELECT position, type, create_time FROM outbox
    WHERE position <= least((SELECT max(position) FROM outbox) - 1, {local_readers})
    ORDER BY position LIMIT :batch
),
first_kept AS (SELECT min(position) AS position FROM oldest WHERE create_time >= :cutoff),
deleted AS (
    DELETE FROM outbox
    WHERE position = ANY(ARRAY(
        SELECT position FROM oldest
        WHERE position < coalesce((SELECT position FROM first_kept), 9223372036854775807)
    ))
    RETURNING type, position
),
marked AS (
    INSERT INTO outbox_pruned (type, through_position, prune_time)
    SELECT type, max(position), :now FROM deleted GROUP BY type
    ON CONFLICT (type) DO UPDATE
    SET through_position = greatest(outbox_pruned.through_position, excluded.through_position),
        prune_time = excluded.prune_time
)
SELECT count(*) FROM deleted
"""
_LOCAL_READERS = "(SELECT min(position) FROM outbox_local_readers)"


def outbox_local_readers_ddl(readers: Mapping[str, str]) -> str:
    """The statement a producer's migration runs to declare the parts that read its outbox in its own
    database: reader name -> a query of the position it has read up to. Pruning keeps every event after
    the lowest; a reader whose query finds nothing counts as position 0 (nothing is pruned)."""
    selects = [
        f"SELECT {_literal(name)}::text AS reader, coalesce(({query}), 0)::bigint AS position"
        for name, query in readers.items()
    ]
    return "CREATE OR REPLACE VIEW outbox_local_readers AS " + " UNION ALL ".join(selects)


async def prune_request_ids(database: Database, *, now: datetime, retention: timedelta, batch: int) -> int:
    """Deletes up to `batch` request ids stored longer than `retention` before `now`; returns how many
    (0 while another replica prunes them)."""
    async with database.transaction() as session:
        if not await _try_lock(session, REQUEST_IDS_LOCK):
            return 0
        result = await session.execute(text(_PRUNE_REQUEST_IDS), {"cutoff": now - retention, "batch": batch})
        return rows_affected(result)


async def prune_applied_events(database: Database, *, margin: int, batch: int) -> int:
    """Deletes up to `batch` applied event ids more than `margin` positions below their consumer's
    cursor; returns how many (0 while another replica prunes them)."""
    async with database.transaction() as session:
        if not await _try_lock(session, APPLIED_EVENTS_LOCK):
            return 0
        result = await session.execute(text(_PRUNE_APPLIED_EVENTS), {"margin": margin, "batch": batch})
        return rows_affected(result)


async def prune_outbox(database: Database, *, now: datetime, retention: timedelta, batch: int) -> int:
    """Deletes up to `batch` of the lowest-positioned events older than `retention` before `now`, none
    that a local reader has not passed and never the newest, and records how far each type was pruned;
    returns how many (0 while another replica prunes the outbox)."""
    async with database.transaction() as session:
        if not await _try_lock(session, OUTBOX_LOCK):
            return 0
        has_readers = (await session.execute(text("SELECT to_regclass('outbox_local_readers') IS NOT NULL"))).scalar()
        statement = _PRUNE_OUTBOX.format(local_readers=_LOCAL_READERS if has_readers else "NULL")
        deleted = await session.execute(text(statement), {"cutoff": now - retention, "now": now, "batch": batch})
        return int(deleted.scalar_one())


def retention_jobs(
    database: Database, clock: Clock, settings: RetentionSettings, *, outbox: bool, applied_events: bool
) -> list[RepeatingTask]:
    """The background jobs that prune a service's chassis tables: request ids always, the outbox of a
    producer, the applied event ids of a consumer."""
    batch = settings.prune_batch_size
    request_ids = timedelta(seconds=settings.request_id_retention_seconds)
    events = timedelta(seconds=settings.outbox_retention_seconds)

    async def prune_ids() -> bool:
        return await prune_request_ids(database, now=clock.now(), retention=request_ids, batch=batch) >= batch

    async def prune_applied() -> bool:
        return await prune_applied_events(database, margin=settings.applied_events_margin, batch=batch) >= batch

    async def prune_events() -> bool:
        return await prune_outbox(database, now=clock.now(), retention=events, batch=batch) >= batch

    interval = settings.prune_interval_seconds
    jobs = [RepeatingTask("prune-request-ids", prune_ids, interval)]
    if applied_events:
        jobs.append(RepeatingTask("prune-applied-events", prune_applied, interval))
    if outbox:
        jobs.append(RepeatingTask("prune-outbox", prune_events, interval))
    return jobs


async def _try_lock(session: AsyncSession, key: int) -> bool:
    """Takes the job's advisory lock for this transaction, if no other replica holds it."""
    locked = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})).scalar()
    return bool(locked)


def _literal(value: str) -> str:
    """`value` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"
