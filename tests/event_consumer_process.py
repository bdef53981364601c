"""A consumer of a producer's event feed, run as its own process by the end-to-end tests.

It records every event it applies in its own database, in `consumed_events`, which has no unique
key: an event applied twice would show as two rows. Configured by environment variables:
`CONSUMER_FEED_TARGET` (the producer, `host:port`), `CONSUMER_DATABASE_URL`, `CONSUMER_NAME` and
`CONSUMER_EVENT_TYPES` (comma-separated, all types when empty). SIGTERM stops it cleanly.
"""

import asyncio
import signal
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from chassis.database import Database, async_url, create_engine
from chassis.event_consumer import CONSUMER_DDL, EventConsumer
from chassis.server import run_process
from chassis.settings import DatabaseSettings, Environment
from crm.common.v1 import events_pb2

if TYPE_CHECKING:
    from tools.postgres import PostgresCluster

CONSUMED_EVENTS_DDL = """
    CREATE TABLE consumed_events (
        event_id uuid NOT NULL,
        position bigint NOT NULL,
        apply_time timestamptz NOT NULL DEFAULT clock_timestamp()
    )
"""
"""The effect the consumer applies: one row per event applied (created by the test)."""


async def fresh_consumer_database(postgres: "PostgresCluster", name: str) -> str:
    """The URL of a new, empty database `name` of a consumer (dropped first if it was there): its
    cursor and applied-event tables and `consumed_events`."""
    postgres.drop_database(name)
    url = postgres.ensure_database(name)
    engine = create_async_engine(async_url(url))
    async with engine.begin() as connection:
        for statement in (*CONSUMER_DDL, CONSUMED_EVENTS_DDL):
            await connection.execute(text(statement))
    await engine.dispose()
    return url


async def record_consumed_event(session: AsyncSession, event: events_pb2.Event) -> None:
    """The effect of one event: a row naming it."""
    await session.execute(
        text("INSERT INTO consumed_events (event_id, position) VALUES (:event_id, :position)"),
        {"event_id": uuid.UUID(event.event_id), "position": event.position},
    )


async def consume() -> None:
    """Follows the feed until SIGTERM."""
    env = Environment()
    database = Database(
        create_engine(DatabaseSettings(url=env.database_url("CONSUMER_DATABASE_URL")), application_name="test-consumer")
    )
    consumer = EventConsumer(
        name=env.text("CONSUMER_NAME"),
        producer="customer",
        feed=env.address("CONSUMER_FEED_TARGET", "127.0.0.1:50051"),
        database=database,
        handler=record_consumed_event,
        event_types=[t for t in env.text("CONSUMER_EVENT_TYPES", "").split(",") if t],
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, consumer.stop)
    try:
        await consumer.run_until_stopped()
    finally:
        await consumer.close()
        await database.close()


if __name__ == "__main__":
    run_process("test-consumer", consume)
