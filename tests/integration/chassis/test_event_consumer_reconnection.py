"""A consumer whose feed is not up: it keeps reconnecting, quietly for a moment, then with warnings."""

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from chassis import event_consumer
from chassis.database import Database, create_engine
from chassis.event_consumer import EventConsumer
from chassis.settings import DatabaseSettings, Environment
from tests.event_consumer_process import fresh_consumer_database, record_consumed_event
from tests.processes import refused_address
from tools.postgres import PostgresCluster

QUIET_SECONDS = 0.6


@pytest.fixture
async def consumer_database(postgres: PostgresCluster, worker_id: str) -> AsyncIterator[Database]:
    url = await fresh_consumer_database(postgres, f"reconnecting_consumer_{worker_id}")
    settings = DatabaseSettings.from_environment(Environment({"TEST_DATABASE_URL": url}), "TEST")
    database = Database(create_engine(settings, application_name="reconnection-test"))
    yield database
    await database.close()


async def test_an_unreachable_feed_is_retried_quietly_at_first_and_then_with_warnings(
    consumer_database: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(event_consumer, "UNREACHABLE_QUIETLY_SECONDS", QUIET_SECONDS)
    caplog.set_level(logging.INFO, logger="crm.events")
    with refused_address() as nowhere:
        consumer = EventConsumer(
            name="reconnection-test",
            producer="customer",
            feed=nowhere,
            database=consumer_database,
            handler=record_consumed_event,
            initial_backoff_seconds=0.05,
            max_backoff_seconds=0.1,
        )
        following = asyncio.create_task(consumer.run_until_stopped())
        await asyncio.sleep(QUIET_SECONDS * 2.5)
        consumer.stop()
        await asyncio.wait_for(following, 5)
    attempts = [r for r in caplog.records if r.getMessage() == "event feed customer failed (UNAVAILABLE); reconnecting"]
    quiet = [r for r in attempts if r.levelno == logging.INFO]
    warned = [r for r in attempts if r.levelno == logging.WARNING]
    assert quiet and warned, [(r.levelname, getattr(r, "unreachable_seconds", None)) for r in attempts]
    # Every quiet one came before every warning, and the warnings only once the feed stayed away.
    assert attempts.index(warned[0]) == len(quiet)
    assert all(getattr(r, "unreachable_seconds", 0) >= QUIET_SECONDS for r in warned)
    assert all(getattr(r, "unreachable_seconds", 0) < QUIET_SECONDS for r in quiet)
