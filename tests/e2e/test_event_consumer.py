"""Consumers of the customer service's event feed: each event takes effect exactly once, whatever
happens to the consumer, the feed or the handler."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from chassis.database import Database, async_url, create_engine
from chassis.event_consumer import EventConsumer
from chassis.outbox import append_event
from chassis.server import ServiceServer
from chassis.settings import DatabaseSettings, Environment
from crm.common.v1 import events_pb2
from services.customer.app import CUSTOMER
from services.customer.settings import CustomerSettings
from tests.event_consumer_process import fresh_consumer_database, record_consumed_event
from tests.event_support import feed_end
from tests.processes import ANY_PORT, ServiceProcess, start_process
from tools.postgres import PostgresCluster

# Each test reads its own payload type, so that the events other tests write do not reach it.
Payload = Callable[[str], Message]


@pytest.fixture
async def consumer_database_url(postgres: PostgresCluster, worker_id: str) -> AsyncIterator[str]:
    """A fresh database of a consumer, with its cursor and applied-event tables and its effect table."""
    url = await fresh_consumer_database(postgres, f"event_consumer_{worker_id}")
    yield url


@pytest.fixture
async def consumer_engine(consumer_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access to the consumer's database."""
    engine = create_async_engine(async_url(consumer_database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def producer(customer_database_url: str) -> AsyncIterator[Database]:
    """The customer database, for writing events straight into its outbox."""
    database = Database(create_engine(DatabaseSettings(url=customer_database_url), application_name="test-producer"))
    yield database
    await database.close()


def database_at(url: str) -> Database:
    return Database(create_engine(DatabaseSettings(url=url), application_name="test-consumer"))


async def produce(
    producer: Database, payload: Payload, *, batches: int, batch_size: int, pause: float = 0.0
) -> list[str]:
    """Writes events in batches of one transaction each; returns their ids in order."""
    ids: list[str] = []
    for batch in range(batches):
        async with producer.transaction() as session:
            written = [
                await append_event(
                    session,
                    aggregate_type="load-test",
                    aggregate_id=f"load-tests/{batch}",
                    payload=payload(f"{batch}-{n}"),
                )
                for n in range(batch_size)
            ]
        ids.extend(str(event_id) for event_id in written)
        await asyncio.sleep(pause)
    return ids


async def last_position(engine: AsyncEngine, event_type: str) -> int:
    """The position of the newest event of a type, once every committed event is numbered."""
    await feed_end(engine)
    async with engine.connect() as connection:
        found = await connection.execute(text("SELECT max(position) FROM outbox WHERE type = :t"), {"t": event_type})
        return int(found.scalar_one())


async def scalar(engine: AsyncEngine, query: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(query))).scalar_one())


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_seconds):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def applied_once_each(engine: AsyncEngine) -> tuple[int, int]:
    """How many effects the consumer applied, and how many events it applied more than once."""
    total = await scalar(engine, "SELECT count(*) FROM consumed_events")
    repeated = await scalar(
        engine, "SELECT count(*) FROM (SELECT event_id FROM consumed_events GROUP BY event_id HAVING count(*) > 1) AS r"
    )
    return total, repeated


async def consumed_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return {str(row.event_id) for row in await connection.execute(text("SELECT event_id FROM consumed_events"))}


async def test_a_consumer_killed_mid_stream_applies_every_event_exactly_once(
    customer_server: ServiceServer,
    customer_engine: AsyncEngine,
    producer: Database,
    consumer_database_url: str,
    consumer_engine: AsyncEngine,
    tmp_path: Path,
):
    event_type = wrappers_pb2.StringValue.DESCRIPTOR.full_name
    environment = {
        "CONSUMER_FEED_TARGET": f"127.0.0.1:{customer_server.port}",
        "CONSUMER_DATABASE_URL": consumer_database_url,
        "CONSUMER_NAME": "kill-test",
        "CONSUMER_EVENT_TYPES": event_type,
    }

    def start_consumer(attempt: int) -> ServiceProcess:
        return start_process(f"consumer-{attempt}", "tests.event_consumer_process", environment, tmp_path)

    async def applied() -> int:
        return await scalar(consumer_engine, "SELECT count(*) FROM consumed_events")

    production = asyncio.ensure_future(
        produce(producer, lambda tag: wrappers_pb2.StringValue(value=tag), batches=30, batch_size=100, pause=0.05)
    )
    consumer = start_consumer(1)
    applied_at_kill = []
    try:
        for attempt, threshold in enumerate((500, 1500), start=2):
            await wait_for(lambda threshold=threshold: _at_least(applied, threshold), 60, f"{threshold} events applied")
            consumer.process.kill()
            await asyncio.to_thread(consumer.process.wait, 10)
            applied_at_kill.append(await applied())
            consumer = start_consumer(attempt)
        produced = await production
        end = await last_position(customer_engine, event_type)
        await wait_for(
            lambda: _at_least(
                lambda: scalar(consumer_engine, "SELECT coalesce(max(position), 0) FROM event_cursors"), end
            ),
            60,
            "the consumer to reach the end of the feed",
        )
        assert await asyncio.to_thread(consumer.stop) == 0, consumer.log()
    finally:
        production.cancel()
        await asyncio.to_thread(consumer.stop)
    total, repeated = await applied_once_each(consumer_engine)
    assert repeated == 0
    assert total == await scalar(customer_engine, f"SELECT count(*) FROM outbox WHERE type = '{event_type}'")
    assert set(produced) <= await consumed_ids(consumer_engine)
    assert all(count < len(produced) for count in applied_at_kill), applied_at_kill


async def test_events_delivered_again_take_effect_once(
    customer_server: ServiceServer,
    customer_engine: AsyncEngine,
    producer: Database,
    consumer_database_url: str,
    consumer_engine: AsyncEngine,
):
    produced = await produce(
        producer, lambda tag: wrappers_pb2.BytesValue(value=tag.encode()), batches=2, batch_size=10
    )
    await feed_end(customer_engine)
    database = database_at(consumer_database_url)
    consumer = EventConsumer(
        name="redelivery-test",
        producer="customer",
        feed=f"127.0.0.1:{customer_server.port}",
        database=database,
        handler=record_consumed_event,
        event_types=[wrappers_pb2.BytesValue.DESCRIPTOR.full_name],
    )
    try:
        first = await consumer.catch_up()
        # As after restoring an old backup of the consumer, or a replayed topic: everything comes again.
        async with consumer_engine.begin() as connection:
            await connection.execute(text("UPDATE event_cursors SET position = 0"))
        second = await consumer.catch_up()
    finally:
        await consumer.close()
        await database.close()
    assert first >= len(produced) and second == 0
    assert await applied_once_each(consumer_engine) == (first, 0)
    assert set(produced) <= await consumed_ids(consumer_engine)


async def test_a_failing_handler_applies_nothing_and_its_event_is_tried_again(
    customer_server: ServiceServer,
    customer_engine: AsyncEngine,
    producer: Database,
    consumer_database_url: str,
    consumer_engine: AsyncEngine,
):
    event_type = wrappers_pb2.Int64Value.DESCRIPTOR.full_name
    produced = await produce(producer, lambda tag: wrappers_pb2.Int64Value(value=len(tag)), batches=1, batch_size=10)
    victim, failures = produced[4], []

    async def fails_once(session: AsyncSession, event: events_pb2.Event) -> None:
        await record_consumed_event(session, event)
        if event.event_id == victim and not failures:
            failures.append(event.event_id)
            raise RuntimeError("the effect could not be applied")

    database = database_at(consumer_database_url)
    consumer = EventConsumer(
        name="failing-handler-test",
        producer="customer",
        feed=f"127.0.0.1:{customer_server.port}",
        database=database,
        handler=fails_once,
        event_types=[event_type],
        initial_backoff_seconds=0.05,
    )
    end = await last_position(customer_engine, event_type)
    following = asyncio.ensure_future(consumer.run_until_stopped())
    try:
        await wait_for(lambda: _at_least(consumer.position, end), 20, "the consumer to reach the end of the feed")
    finally:
        consumer.stop()
        await asyncio.wait_for(following, 5)
        await consumer.close()
        await database.close()
    assert failures == [victim]
    in_feed = await scalar(customer_engine, f"SELECT count(*) FROM outbox WHERE type = '{event_type}'")
    assert await applied_once_each(consumer_engine) == (in_feed, 0)
    assert set(produced) <= await consumed_ids(consumer_engine)


async def test_a_following_consumer_carries_on_after_the_feed_server_restarts(
    customer_database_url: str,
    customer_engine: AsyncEngine,
    producer: Database,
    consumer_database_url: str,
    consumer_engine: AsyncEngine,
):
    event_type = wrappers_pb2.UInt64Value.DESCRIPTOR.full_name
    settings = CustomerSettings.from_environment(
        Environment({"CUSTOMER_DATABASE_URL": customer_database_url, "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0"})
    )
    server = CUSTOMER.build_server(replace(settings, server=replace(settings.server, address=ANY_PORT)))
    # The restarted server comes back on the port the first one bound, where the consumer reconnects.
    address = f"127.0.0.1:{server.port}"
    database = database_at(consumer_database_url)
    consumer = EventConsumer(
        name="restart-test",
        producer="customer",
        feed=address,
        database=database,
        handler=record_consumed_event,
        event_types=[event_type],
        initial_backoff_seconds=0.05,
        max_backoff_seconds=0.2,
    )

    def payload(tag: str) -> Message:
        return wrappers_pb2.UInt64Value(value=len(tag))

    await server.start()
    following = asyncio.ensure_future(consumer.run_until_stopped())
    try:
        before = await produce(producer, payload, batches=1, batch_size=5)
        end = await last_position(customer_engine, event_type)
        await wait_for(lambda: _at_least(consumer.position, end), 20, "the events before the restart")
        await server.stop()
        after = await produce(producer, payload, batches=1, batch_size=5)
        server = CUSTOMER.build_server(replace(settings, server=replace(settings.server, address=address)))
        await server.start()
        end = await last_position(customer_engine, event_type)
        await wait_for(lambda: _at_least(consumer.position, end), 20, "the events after the restart")
    finally:
        consumer.stop()
        await asyncio.wait_for(following, 5)
        await consumer.close()
        await database.close()
        await server.stop()
    assert (await applied_once_each(consumer_engine))[1] == 0
    assert set(before + after) <= await consumed_ids(consumer_engine)


async def _at_least(measure: Callable[[], Awaitable[int]], target: int) -> bool:
    return await measure() >= target
