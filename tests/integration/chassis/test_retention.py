"""Retention of the chassis' tables: request ids, applied event ids and outbox events are pruned once
past their retention or margin, and nothing else; each job is bounded, runs on one replica at a time,
reads the service's clock, and is scheduled by the chassis for every service."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message
from sqlalchemy import MetaData, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from chassis.caller import Caller, set_current_caller
from chassis.clock import ManualClock
from chassis.database import Database, async_url, create_engine
from chassis.event_consumer import EventConsumer
from chassis.idempotency import IdempotentRunner, idempotency_table
from chassis.outbox import NewEvent, append_events, sequence_pending
from chassis.retention import (
    APPLIED_EVENTS_LOCK,
    OUTBOX_LOCK,
    REQUEST_IDS_LOCK,
    prune_applied_events,
    prune_outbox,
    prune_request_ids,
)
from chassis.server import ServiceServer
from chassis.settings import DatabaseSettings, Environment
from crm.common.v1 import events_pb2
from crm.common.v1.events_pb2_grpc import EventFeedServiceStub
from crm.customer.v1 import customer_pb2, customer_service_pb2
from services.customer.app import CUSTOMER
from services.customer.settings import CustomerSettings
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.event_consumer_process import fresh_consumer_database, record_consumed_event
from tests.support import failure
from tools.postgres import PostgresCluster

WEEK = timedelta(days=7)
MONTH = timedelta(days=30)
STRING_VALUE = wrappers_pb2.StringValue.DESCRIPTOR.full_name
INT64_VALUE = wrappers_pb2.Int64Value.DESCRIPTOR.full_name


# Databases of their own: pruning by age would take rows other tests of the worker rely on. --------


@pytest.fixture(scope="session")
def retention_customer_url(postgres: PostgresCluster, worker_id: str) -> str:
    """A migrated customer database used only by these tests."""
    url = postgres.ensure_database(f"retention_customer_{worker_id}")
    CUSTOMER.migrate(_customer_settings(url))
    return url


@pytest.fixture(scope="session")
def retention_loyalty_url(postgres: PostgresCluster, worker_id: str) -> str:
    """A migrated loyalty database used only by these tests."""
    url = postgres.ensure_database(f"retention_loyalty_{worker_id}")
    LOYALTY.migrate(_loyalty_settings(url))
    return url


@pytest.fixture
async def customer_engine(retention_customer_url: str) -> AsyncIterator[AsyncEngine]:
    """The customer database with empty chassis tables and the segment evaluator at the start."""
    engine = create_async_engine(async_url(retention_customer_url))
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE outbox, outbox_pruned, idempotency_keys"))
        await connection.execute(text("UPDATE segmentation_state SET outbox_position = 0"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def loyalty_engine(retention_loyalty_url: str) -> AsyncIterator[AsyncEngine]:
    """The loyalty database with empty chassis tables."""
    engine = create_async_engine(async_url(retention_loyalty_url))
    async with engine.begin() as connection:
        await connection.execute(
            text("TRUNCATE outbox, outbox_pruned, idempotency_keys, event_cursors, applied_events")
        )
    yield engine
    await engine.dispose()


@pytest.fixture
async def customer_database(retention_customer_url: str, customer_engine: AsyncEngine) -> AsyncIterator[Database]:
    """The customer database as a service sees it."""
    database = _database(retention_customer_url)
    yield database
    await database.close()


@pytest.fixture
async def loyalty_database(retention_loyalty_url: str, loyalty_engine: AsyncEngine) -> AsyncIterator[Database]:
    """The loyalty database as a service sees it."""
    database = _database(retention_loyalty_url)
    yield database
    await database.close()


@pytest.fixture
async def consumer_url(postgres: PostgresCluster, worker_id: str) -> AsyncIterator[str]:
    """A fresh consumer database: cursors, applied ids and one row per effect (`consumed_events`)."""
    url = await fresh_consumer_database(postgres, f"retention_consumer_{worker_id}")
    yield url


# Request ids -------------------------------------------------------------------------------------


async def test_request_ids_older_than_the_retention_are_pruned_and_the_rest_stay(
    customer_database: Database, customer_engine: AsyncEngine
):
    now = datetime.now(UTC)
    await store_keys(customer_engine, {"past": now - WEEK - timedelta(seconds=1), "long-past": now - 2 * WEEK})
    await store_keys(customer_engine, {"at-the-edge": now - WEEK, "young": now - WEEK + timedelta(seconds=1)})
    pruned = await prune_request_ids(customer_database, now=now, retention=WEEK, batch=100)
    assert pruned == 2
    assert await stored_keys(customer_engine) == {"at-the-edge", "young"}


async def test_a_retry_within_the_retention_gets_the_first_answer_and_after_pruning_is_new(
    customer_database: Database, customer_engine: AsyncEngine
):
    set_current_caller(Caller(subject="retention-test", kind="employee"))
    runner = IdempotentRunner(customer_database, idempotency_table(MetaData()))
    attempts = 0

    async def work(session: AsyncSession) -> customer_pb2.Customer:
        nonlocal attempts
        attempts += 1
        return customer_pb2.Customer(name=f"customers/attempt-{attempts}")

    request = customer_service_pb2.ChangeCustomerStatusRequest(name="customers/1", request_id="retention-retry")
    first = await runner.run(request, customer_pb2.Customer, work)
    clock = ManualClock(await first_call_time(customer_engine, "retention-retry"))
    clock.advance(WEEK - timedelta(seconds=1))
    await prune_request_ids(customer_database, now=clock.now(), retention=WEEK, batch=100)
    assert await runner.run(request, customer_pb2.Customer, work) == first
    clock.advance(timedelta(seconds=2))
    assert await prune_request_ids(customer_database, now=clock.now(), retention=WEEK, batch=100) == 1
    again = await runner.run(request, customer_pb2.Customer, work)
    assert (first.name, again.name, attempts) == ("customers/attempt-1", "customers/attempt-2", 2)


# Applied event ids -------------------------------------------------------------------------------


async def test_applied_ids_more_than_the_margin_below_the_cursor_are_pruned_and_the_rest_stay(
    loyalty_database: Database, loyalty_engine: AsyncEngine
):
    await record_applied(loyalty_engine, "earning", cursor=100, positions=range(1, 101))
    await record_applied(loyalty_engine, "reporting", cursor=50, positions=range(1, 51))
    pruned = await prune_applied_events(loyalty_database, margin=10, batch=1000)
    assert pruned == 90 + 40
    assert await applied_positions(loyalty_engine, "earning") == list(range(91, 101))
    assert await applied_positions(loyalty_engine, "reporting") == list(range(41, 51))


async def test_events_redelivered_up_to_the_cursor_after_pruning_are_applied_once(
    customer_database: Database, retention_customer_url: str, consumer_url: str
):
    async with customer_server(retention_customer_url) as (server, _):
        await write_events(customer_database, 30, now=datetime.now(UTC))
        await numbered(customer_database)
        consumer_database = _database(consumer_url)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            consumer = consumer_of(channel, consumer_database)
            assert await consumer.catch_up() == 30
            cursor = await consumer.position()
            assert await prune_applied_events(consumer_database, margin=10, batch=1000) == 20
            # A replica whose stream opened from an older cursor, within the margin, delivers them again.
            await set_cursor(consumer_database, cursor - 10)
            assert await consumer.catch_up() == 0
            await consumer.close()
        effects = await consumed_positions(consumer_database)
        await consumer_database.close()
    assert len(effects) == len(set(effects)) == 30


# The outbox --------------------------------------------------------------------------------------


async def test_outbox_events_older_than_the_retention_are_pruned_and_younger_ones_stay(
    customer_database: Database, customer_engine: AsyncEngine
):
    now = datetime.now(UTC)
    await write_events(customer_database, 3, now=now - MONTH - timedelta(seconds=1))
    await write_events(customer_database, 2, now=now - MONTH)
    await write_events(customer_database, 1, now=now)
    await numbered(customer_database)
    await evaluator_read_up_to(customer_engine, 6)
    assert await prune_outbox(customer_database, now=now, retention=MONTH, batch=100) == 3
    assert await outbox_positions(customer_engine) == [4, 5, 6]


async def test_outbox_pruning_keeps_what_a_local_reader_has_not_read(
    customer_database: Database, customer_engine: AsyncEngine
):
    now = datetime.now(UTC)
    await write_events(customer_database, 5, now=now - 2 * MONTH)
    await numbered(customer_database)
    await evaluator_read_up_to(customer_engine, 2)
    assert await prune_outbox(customer_database, now=now, retention=MONTH, batch=100) == 2
    assert await outbox_positions(customer_engine) == [3, 4, 5]


async def test_outbox_pruning_stops_at_the_first_younger_event_so_no_gap_opens(
    customer_database: Database, customer_engine: AsyncEngine
):
    now = datetime.now(UTC)
    await write_events(customer_database, 1, now=now - 2 * MONTH)
    await write_events(customer_database, 1, now=now)
    await write_events(customer_database, 2, now=now - 2 * MONTH)
    await numbered(customer_database)
    await evaluator_read_up_to(customer_engine, 4)
    assert await prune_outbox(customer_database, now=now, retention=MONTH, batch=100) == 1
    assert await outbox_positions(customer_engine) == [2, 3, 4]


async def test_the_newest_event_is_kept_so_that_positions_go_on_from_it(
    customer_database: Database, customer_engine: AsyncEngine
):
    now = datetime.now(UTC)
    await write_events(customer_database, 3, now=now - 2 * MONTH)
    await numbered(customer_database)
    await evaluator_read_up_to(customer_engine, 3)
    assert await prune_outbox(customer_database, now=now, retention=MONTH, batch=100) == 2
    await write_events(customer_database, 1, now=now)
    await numbered(customer_database)
    assert await outbox_positions(customer_engine) == [3, 4]


async def test_a_reader_resuming_before_the_oldest_kept_event_is_told_events_were_pruned(
    customer_database: Database, customer_engine: AsyncEngine, retention_customer_url: str
):
    async with customer_server(retention_customer_url) as (server, clock):
        await write_events(customer_database, 4, now=clock.now())
        await numbered(customer_database)
        await wait_for_evaluator(customer_engine, 4)
        clock.advance(MONTH + timedelta(seconds=1))
        assert await prune_outbox(customer_database, now=clock.now(), retention=MONTH, batch=100) == 3
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            code, error = await failure(read_feed(channel, after=1))
            resumed = await read_feed(channel, after=3)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "EVENTS_PRUNED"
    assert error.metadata == {"after_position": "1", "pruned_through_position": "3"}
    assert [event.position for event in resumed] == [4]


async def test_a_reader_of_types_never_pruned_resumes_from_before_the_oldest_kept_event(
    customer_database: Database, customer_engine: AsyncEngine, retention_customer_url: str
):
    async with customer_server(retention_customer_url) as (server, clock):
        await write_events(customer_database, 3, now=clock.now(), payload=lambda n: wrappers_pb2.StringValue(value=n))
        await write_events(customer_database, 1, now=clock.now(), payload=lambda n: wrappers_pb2.Int64Value(value=1))
        await numbered(customer_database)
        await wait_for_evaluator(customer_engine, 4)
        clock.advance(MONTH + timedelta(seconds=1))
        assert await prune_outbox(customer_database, now=clock.now(), retention=MONTH, batch=100) == 3
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            others = await read_feed(channel, after=0, event_types=[INT64_VALUE])
            code, error = await failure(read_feed(channel, after=0, event_types=[STRING_VALUE]))
    assert [event.position for event in others] == [4]
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "EVENTS_PRUNED"


# Every job: bounded, one replica at a time, through an index -------------------------------------


@dataclass(frozen=True)
class Job:
    """One pruning job, with five rows past retention written by `fill` into the database it prunes."""

    name: str
    lock: int
    database: str
    fill: Callable[[Database, AsyncEngine], Awaitable[None]]
    prune: Callable[[Database, int], Awaitable[int]]
    locked_row: str
    """A query locking one row the job would delete."""


async def _old_request_ids(database: Database, engine: AsyncEngine) -> None:
    await store_keys(engine, {f"old-{n}": datetime.now(UTC) - 2 * WEEK for n in range(5)})


async def _applied_below_margin(database: Database, engine: AsyncEngine) -> None:
    await record_applied(engine, "earning", cursor=105, positions=range(1, 106))


async def _old_events(database: Database, engine: AsyncEngine) -> None:
    await write_events(database, 6, now=datetime.now(UTC) - 2 * MONTH)
    await numbered(database)
    await evaluator_read_up_to(engine, 6)


JOBS = [
    Job(
        "request ids",
        REQUEST_IDS_LOCK,
        "customer",
        _old_request_ids,
        lambda db, batch: prune_request_ids(db, now=datetime.now(UTC), retention=WEEK, batch=batch),
        "SELECT 1 FROM idempotency_keys WHERE request_id = 'old-0' FOR UPDATE",
    ),
    Job(
        "applied ids",
        APPLIED_EVENTS_LOCK,
        "loyalty",
        _applied_below_margin,
        lambda db, batch: prune_applied_events(db, margin=100, batch=batch),
        "SELECT 1 FROM applied_events WHERE position = 1 FOR UPDATE",
    ),
    Job(
        "outbox",
        OUTBOX_LOCK,
        "customer",
        _old_events,
        lambda db, batch: prune_outbox(db, now=datetime.now(UTC), retention=MONTH, batch=batch),
        "SELECT 1 FROM outbox WHERE position = 1 FOR UPDATE",
    ),
]


@pytest.fixture(params=JOBS, ids=[job.name for job in JOBS])
def job(request: pytest.FixtureRequest) -> Job:
    job: Job = request.param
    return job


@pytest.fixture
def job_database(job: Job, request: pytest.FixtureRequest) -> tuple[Database, AsyncEngine]:
    """The database the job prunes, with empty chassis tables."""
    return request.getfixturevalue(f"{job.database}_database"), request.getfixturevalue(f"{job.database}_engine")


async def test_a_prune_deletes_at_most_one_batch_and_the_next_continues(
    job: Job, job_database: tuple[Database, AsyncEngine]
):
    database, engine = job_database
    await job.fill(database, engine)
    assert [await job.prune(database, 2) for _ in range(4)] == [2, 2, 1, 0]


async def test_a_prune_while_another_replica_prunes_does_nothing(job: Job, job_database: tuple[Database, AsyncEngine]):
    database, engine = job_database
    await job.fill(database, engine)
    async with engine.connect() as blocker:
        # The first run takes the job's lock, then waits on a row this connection holds.
        await blocker.execute(text(job.locked_row))
        first = asyncio.create_task(job.prune(database, 100))
        await wait_until(lambda: waiting_on_a_row_lock(engine), "the first run to wait on the locked row")
        assert await job.prune(database, 100) == 0
        await blocker.rollback()
    assert await first == 5


async def test_the_prune_finds_its_rows_through_an_index(job: Job, job_database: tuple[Database, AsyncEngine]):
    database, engine = job_database
    await job.fill(database, engine)
    statements = await statements_run_by(database, lambda: job.prune(database, 100))
    delete = next(statement for statement in statements if "DELETE" in statement[0])
    plan = await query_plan(engine, *delete)
    table = {"request ids": "idempotency_keys", "applied ids": "applied_events", "outbox": "outbox"}[job.name]
    index = {"request ids": "idempotency_keys_create_time", "applied ids": "applied_events_position"}
    assert f"Seq Scan on {table}" not in plan
    assert index.get(job.name, "outbox_position") in plan


# Scheduled by the chassis for every service, on the service's clock ------------------------------


async def test_every_service_prunes_its_request_ids_on_its_own_clock(
    customer_engine: AsyncEngine, loyalty_engine: AsyncEngine, retention_customer_url: str, retention_loyalty_url: str
):
    loyalty_clock = ManualClock(datetime.now(UTC))
    loyalty = LOYALTY.build_server(_loyalty_settings(retention_loyalty_url, fast_pruning=True), clock=loyalty_clock)
    async with customer_server(retention_customer_url, fast_pruning=True) as (_, customer_clock):
        await loyalty.start()
        try:
            for engine in (customer_engine, loyalty_engine):
                await store_keys(engine, {"first-call": datetime.now(UTC)})
            customer_clock.advance(WEEK + timedelta(minutes=1))
            loyalty_clock.advance(WEEK + timedelta(minutes=1))
            for engine in (customer_engine, loyalty_engine):
                await wait_until(lambda e=engine: no_rows(e, "idempotency_keys"), "the request ids to be pruned")
        finally:
            await loyalty.stop()


async def test_a_producer_prunes_its_outbox_on_its_own_clock(
    customer_database: Database, customer_engine: AsyncEngine, retention_customer_url: str
):
    async with customer_server(retention_customer_url, fast_pruning=True) as (_, clock):
        await write_events(customer_database, 3, now=clock.now())
        await wait_for_evaluator(customer_engine, 3)
        clock.advance(MONTH + timedelta(minutes=1))
        await wait_until(lambda: outbox_starts_at(customer_engine, 3), "the outbox to be pruned")


async def test_a_consumer_prunes_its_applied_ids(loyalty_engine: AsyncEngine, retention_loyalty_url: str):
    await record_applied(loyalty_engine, "reporting", cursor=200, positions=range(1, 201))
    settings = _loyalty_settings(retention_loyalty_url, fast_pruning=True, feed="127.0.0.1:1")
    loyalty = LOYALTY.build_server(settings, clock=ManualClock(datetime.now(UTC)))
    await loyalty.start()
    try:
        await wait_until(lambda: applied_starts_at(loyalty_engine, "reporting", 191), "the applied ids to be pruned")
    finally:
        await loyalty.stop()


# Helpers -----------------------------------------------------------------------------------------


def _customer_settings(url: str, *, fast_pruning: bool = False) -> CustomerSettings:
    return CustomerSettings.from_environment(Environment(_service_env("CUSTOMER", url, fast_pruning)))


def _loyalty_settings(url: str, *, fast_pruning: bool = False, feed: str = "") -> LoyaltySettings:
    env = _service_env("LOYALTY", url, fast_pruning) | {"LOYALTY_SCHEDULE_INTERVAL_SECONDS": "86400"}
    if feed:
        env |= {"LOYALTY_CUSTOMER_FEED_TARGET": feed, "LOYALTY_DATABASE_APPLIED_EVENTS_MARGIN": "10"}
    return LoyaltySettings.from_environment(Environment(env))


def _service_env(prefix: str, url: str, fast_pruning: bool) -> dict[str, str]:
    env = {
        f"{prefix}_DATABASE_URL": url,
        f"{prefix}_GRPC_ADDRESS": "127.0.0.1:0",
        f"{prefix}_SHUTDOWN_DRAIN_SECONDS": "0",
    }
    if fast_pruning:
        env[f"{prefix}_DATABASE_PRUNE_INTERVAL_SECONDS"] = "0.05"
    return env


@asynccontextmanager
async def customer_server(url: str, *, fast_pruning: bool = False) -> AsyncIterator[tuple[ServiceServer, ManualClock]]:
    """The customer service over the test's database, on a clock the test moves; with `fast_pruning`
    its chassis prunes every 50 ms (else only as it starts)."""
    clock = ManualClock(datetime.now(UTC))
    server = CUSTOMER.build_server(_customer_settings(url, fast_pruning=fast_pruning), clock=clock)
    await server.start()
    try:
        yield server, clock
    finally:
        await server.stop()


def _database(url: str) -> Database:
    return Database(create_engine(DatabaseSettings(url=url), application_name="retention-test"))


async def store_keys(engine: AsyncEngine, created: dict[str, datetime]) -> None:
    """Stored answers of requests first made at the given times."""
    async with engine.begin() as connection:
        for request_id, create_time in created.items():
            await connection.execute(
                text(
                    "INSERT INTO idempotency_keys (caller, request_id, method, fingerprint, response, create_time) "
                    "VALUES ('retention-test', :request_id, 'Test', '', '', :create_time)"
                ),
                {"request_id": request_id, "create_time": create_time},
            )


async def stored_keys(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set((await connection.execute(text("SELECT request_id FROM idempotency_keys"))).scalars())


async def first_call_time(engine: AsyncEngine, request_id: str) -> datetime:
    async with engine.connect() as connection:
        found = await connection.execute(
            text("SELECT create_time FROM idempotency_keys WHERE request_id = :r"), {"r": request_id}
        )
        created: datetime = found.scalar_one()
        return created


async def record_applied(engine: AsyncEngine, consumer: str, *, cursor: int, positions: range) -> None:
    """A consumer of the customer feed at `cursor` that applied the events at `positions`."""
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO event_cursors (consumer, producer, position) VALUES (:consumer, 'customer', :cursor)"),
            {"consumer": consumer, "cursor": cursor},
        )
        await connection.execute(
            text(
                "INSERT INTO applied_events (consumer, event_id, producer, position) "
                "SELECT :consumer, gen_random_uuid(), 'customer', p FROM unnest(CAST(:positions AS bigint[])) AS p"
            ),
            {"consumer": consumer, "positions": list(positions)},
        )


async def applied_positions(engine: AsyncEngine, consumer: str) -> list[int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT position FROM applied_events WHERE consumer = :consumer ORDER BY position"),
            {"consumer": consumer},
        )
        return list(rows.scalars())


async def write_events(
    database: Database,
    count: int,
    *,
    now: datetime,
    payload: Callable[[str], Message] = lambda n: wrappers_pb2.StringValue(value=n),
) -> None:
    """`count` events written at `now` in one transaction, about no customer."""
    async with database.transaction() as session:
        events = [NewEvent("retention-test", f"retention-tests/{n}", payload(str(n))) for n in range(count)]
        await append_events(session, events, now=now)


async def outbox_positions(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as connection:
        return list((await connection.execute(text("SELECT position FROM outbox ORDER BY position"))).scalars())


async def evaluator_read_up_to(engine: AsyncEngine, position: int) -> None:
    """Puts the segment evaluator, the customer service's local reader of its outbox, at `position`."""
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE segmentation_state SET outbox_position = :p"), {"p": position})


async def wait_for_evaluator(engine: AsyncEngine, position: int) -> None:
    async def passed() -> bool:
        async with engine.connect() as connection:
            found = await connection.execute(text("SELECT outbox_position FROM segmentation_state"))
            return int(found.scalar_one()) >= position

    await wait_until(passed, f"the segment evaluator to read up to {position}")


async def outbox_starts_at(engine: AsyncEngine, position: int) -> bool:
    return (await outbox_positions(engine))[:1] == [position]


async def applied_starts_at(engine: AsyncEngine, consumer: str, position: int) -> bool:
    return (await applied_positions(engine, consumer))[:1] == [position]


async def no_rows(engine: AsyncEngine, table: str) -> bool:
    async with engine.connect() as connection:
        return not (await connection.execute(text(f"SELECT EXISTS (SELECT FROM {table})"))).scalar_one()


async def numbered(database: Database) -> None:
    """Numbers every committed event; a server's own sequencer may hold the numbering lock meanwhile,
    so this waits (bounded) until none is left unnumbered."""
    async with asyncio.timeout(10):
        while True:
            await sequence_pending(database)
            async with database.transaction() as session:
                unnumbered = (
                    await session.execute(text("SELECT EXISTS (SELECT FROM outbox WHERE position IS NULL)"))
                ).scalar()
            if not unnumbered:
                return
            await asyncio.sleep(0.02)


def consumer_of(channel: grpc.aio.Channel, database: Database) -> EventConsumer:
    return EventConsumer(
        name="retention-test",
        producer="customer",
        feed=channel,
        database=database,
        handler=record_consumed_event,
        event_types=[STRING_VALUE],
    )


async def set_cursor(database: Database, position: int) -> None:
    async with database.transaction() as session:
        await session.execute(text("UPDATE event_cursors SET position = :p"), {"p": position})


async def consumed_positions(database: Database) -> list[int]:
    async with database.transaction() as session:
        return list((await session.execute(text("SELECT position FROM consumed_events"))).scalars())


async def read_feed(
    channel: grpc.aio.Channel, *, after: int, event_types: list[str] | None = None
) -> list[events_pb2.Event]:
    request = events_pb2.StreamEventsRequest(after_position=after, event_types=event_types or [STRING_VALUE])
    return [event async for event in EventFeedServiceStub(channel).StreamEvents(request, timeout=10)]


async def waiting_on_a_row_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        waiting = await connection.execute(
            text(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'retention-test' AND wait_event_type = 'Lock')"
            )
        )
        return bool(waiting.scalar_one())


async def statements_run_by(database: Database, run: Callable[[], Awaitable[object]]) -> list[tuple[str, Any]]:
    """The statements and parameters `run` sends to `database`."""
    seen: list[tuple[str, Any]] = []

    def record(connection: object, cursor: object, statement: str, parameters: Any, *_: object) -> None:
        seen.append((statement, parameters))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        await run()
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    return seen


async def query_plan(engine: AsyncEngine, statement: str, parameters: Any) -> str:
    """The plan of `statement` when the planner may use an index (tables here are small)."""
    async with engine.connect() as connection:
        await connection.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await _explain(connection, statement, parameters)
        await connection.rollback()
    return plan


async def _explain(connection: AsyncConnection, statement: str, parameters: Any) -> str:
    rows = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
    return "\n".join(row[0] for row in rows)


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout_seconds: float = 10.0) -> None:
    """Polls `check` until it holds (background work runs on its own schedule)."""
    try:
        async with asyncio.timeout(timeout_seconds):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
