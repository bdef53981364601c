"""A consumer whose feed is not up: it keeps reconnecting, quietly for a moment, then with warnings."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from chassis.clock import ManualClock
from chassis.database import Database, create_engine
from chassis.event_consumer import UNREACHABLE_QUIETLY_SECONDS, EventConsumer
from chassis.settings import DatabaseSettings, Environment
from tests.event_consumer_process import fresh_consumer_database, record_consumed_event
from tests.processes import refused_address
from tools.postgres import PostgresCluster


@pytest.fixture
async def consumer_database(postgres: PostgresCluster, worker_id: str) -> AsyncIterator[Database]:
    url = await fresh_consumer_database(postgres, f"reconnecting_consumer_{worker_id}")
    settings = DatabaseSettings.from_environment(Environment({"TEST_DATABASE_URL": url}), "TEST")
    database = Database(create_engine(settings, application_name="reconnection-test"))
    yield database
    await database.close()


ATTEMPT = "event feed customer failed (UNAVAILABLE); reconnecting"


def reconnections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == ATTEMPT]


async def until(condition: Callable[[], bool]) -> None:
    """Returns once `condition` holds (the consumer's attempts are real reconnections), bounded."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.02)


async def test_an_unreachable_feed_is_retried_quietly_at_first_and_then_with_warnings(
    consumer_database: Database, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="crm.events")
    clock = ManualClock()
    with refused_address() as nowhere:
        consumer = EventConsumer(
            name="reconnection-test",
            producer="customer",
            feed=nowhere,
            database=consumer_database,
            handler=record_consumed_event,
            initial_backoff_seconds=0.05,
            max_backoff_seconds=0.1,
            clock=clock,
        )
        following = asyncio.create_task(consumer.run_until_stopped())
        await until(lambda: len(reconnections(caplog)) >= 3)
        clock.advance(timedelta(seconds=UNREACHABLE_QUIETLY_SECONDS))
        await until(lambda: any(r.levelno == logging.WARNING for r in reconnections(caplog)))
        consumer.stop()
        await asyncio.wait_for(following, 5)
    attempts = reconnections(caplog)
    quiet = [r for r in attempts if r.levelno == logging.INFO]
    warned = [r for r in attempts if r.levelno == logging.WARNING]
    assert len(quiet) >= 3 and warned, [(r.levelname, getattr(r, "unreachable_seconds", None)) for r in attempts]
    # Every quiet one came before every warning, and the warnings only once the feed stayed away.
    assert attempts.index(warned[0]) == len(quiet)
    assert all(getattr(r, "unreachable_seconds", 0) >= UNREACHABLE_QUIETLY_SECONDS for r in warned)
    assert all(getattr(r, "unreachable_seconds", 0) < UNREACHABLE_QUIETLY_SECONDS for r in quiet)
