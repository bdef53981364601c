"""Usage records by day in partitions, against a real PostgreSQL: made ahead by the service's own
background work as its clock moves, dropped whole once older than the retention and folded, and the
records stored before partitioning kept and keyed as before. Each test has a database of its own."""

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.clock import ManualClock
from chassis.database import Database, async_url, create_engine, migrate
from chassis.settings import DatabaseSettings, Environment
from crm.customer.v1 import customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from services.customer.app import CUSTOMER
from services.customer.settings import CustomerSettings
from services.customer.usage.partitions import keep_partitions
from services.customer.usage.publisher import fold_pending
from services.customer.usage.retention import PARTITIONS_CREATED_PER_RUN
from services.customer.usage.settings import UsageSettings
from tests.integration.customer.test_usage import ingest, record
from tests.support import create_request, line, person, request_id
from tools.postgres import PostgresCluster

SETTINGS = UsageSettings()
RETENTION = timedelta(days=SETTINGS.record_retention_days)


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


async def partition_days(engine: AsyncEngine) -> set[str]:
    """The names of usage_records' partitions."""
    async with engine.connect() as connection:
        names = await connection.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'usage_records'::regclass"
            )
        )
        return set(names.scalars())


def day_names(first: date, last: date) -> set[str]:
    return {f"usage_records_{first + timedelta(days=n):%Y%m%d}" for n in range((last - first).days + 1)}


async def store_record(engine: AsyncEngine, day: date, data_mb: float = 5.0) -> None:
    """A record stored as ingestion would store it, of a line that need not exist."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO usage_records (record_id, subscription_id, customer_id, usage_date, on_net_minutes, "
                "off_net_minutes, international_minutes, sms_count, data_mb, roaming, area, radio_technology) "
                "VALUES (:r, :s, :c, :d, 1, 0, 0, 0, :mb, false, 'Toshkent', '4G')"
            ),
            {"r": f"r-{uuid.uuid4()}", "s": uuid.uuid4(), "c": uuid.uuid4(), "d": day, "mb": data_mb},
        )


async def fresh_database(postgres: PostgresCluster, name: str) -> str:
    postgres.drop_database(name)
    url = postgres.ensure_database(name)
    await asyncio.to_thread(migrate, url, CUSTOMER.migrations)
    return url


async def test_the_service_makes_partitions_ahead_as_its_clock_moves(postgres: PostgresCluster, worker_id: str) -> None:
    url = await fresh_database(postgres, f"usage_ahead_{worker_id}")
    clock = ManualClock(noon(datetime.now(UTC).date()))
    environment = {"CUSTOMER_DATABASE_URL": url, "CUSTOMER_GRPC_ADDRESS": "127.0.0.1:0"}
    server = CUSTOMER.build_server(CustomerSettings.from_environment(Environment(environment)), clock=clock)
    engine = create_async_engine(async_url(url))
    await server.start()
    try:
        first_daily = clock.now().date() + timedelta(days=1)
        later = clock.advance(timedelta(days=10)).date()
        # The days ahead of the new today, and every kept day since the migration's own partitions.
        wanted = day_names(first_daily, later + timedelta(days=SETTINGS.partitions_ahead_days))
        async with asyncio.timeout(20):
            while not wanted <= await partition_days(engine):
                await asyncio.sleep(0.05)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            customers = CustomerServiceStub(channel)
            customer = await customers.CreateCustomer(create_request(person()), timeout=5)
            subscription = await customers.CreateSubscription(
                customer_service_pb2.CreateSubscriptionRequest(
                    parent=customer.name, subscription=line(), request_id=request_id()
                ),
                timeout=5,
            )
            late = later - timedelta(days=5)
            reply = await ingest(UsageServiceStub(channel), [record(subscription.msisdn, d) for d in (later, late)])
        assert (reply.accepted, reply.rejected) == (2, 0)
    finally:
        await server.stop()
        await engine.dispose()


async def test_expired_partitions_are_dropped_only_once_folded_and_a_run_is_bounded(
    postgres: PostgresCluster, worker_id: str
) -> None:
    url = await fresh_database(postgres, f"usage_retention_{worker_id}")
    engine = create_async_engine(async_url(url))
    database = Database(create_engine(DatabaseSettings(url=url), application_name="tests"))
    try:
        migrated = datetime.now(UTC).date()
        first_daily = migrated + timedelta(days=1)
        await store_record(engine, migrated - timedelta(days=3))  # with the records of before partitioning
        await store_record(engine, first_daily + timedelta(days=1), data_mb=7.0)
        clock = ManualClock(noon(first_daily + timedelta(days=2)) + RETENTION)
        kept_since = clock.now().date() - RETENTION

        run = await keep_partitions(database, clock, SETTINGS)
        # Only the empty expired day goes; those holding records not yet folded wait.
        names = await partition_days(engine)
        assert f"usage_records_{first_daily:%Y%m%d}" not in names
        assert {
            f"usage_records_before_{first_daily:%Y%m%d}",
            f"usage_records_{kept_since - timedelta(days=1):%Y%m%d}",
        } <= names
        assert (run.created, run.dropped, run.left_over) == (PARTITIONS_CREATED_PER_RUN, 1, True)

        await fold_pending(database)
        while (await keep_partitions(database, clock, SETTINGS)).left_over:
            pass
        names = await partition_days(engine)
        assert not any(name.startswith("usage_records_before_") for name in names)
        today = clock.now().date()
        assert names == day_names(kept_since, today + timedelta(days=SETTINGS.partitions_ahead_days))
        async with engine.connect() as connection:
            folded = await connection.execute(text("SELECT sum(record_count), sum(data_mb) FROM monthly_usage"))
            assert tuple(folded.one()) == (2, 12.0)
    finally:
        await database.close()
        await engine.dispose()


async def test_records_stored_before_partitioning_stay_counted_and_keyed(
    postgres: PostgresCluster, worker_id: str
) -> None:
    name = f"usage_partitioning_{worker_id}"
    postgres.drop_database(name)
    url = postgres.ensure_database(name)
    await asyncio.to_thread(migrate, url, CUSTOMER.migrations, "0006")
    engine = create_async_engine(async_url(url))
    try:
        day = datetime.now(UTC).date() - timedelta(days=3)
        await store_record(engine, day)
        await store_record(engine, day - timedelta(days=400))
        async with engine.connect() as connection:
            before = (await connection.execute(text("SELECT record_id, seq FROM usage_records ORDER BY seq"))).all()
        await asyncio.to_thread(migrate, url, CUSTOMER.migrations)
        async with engine.begin() as connection:
            after = (await connection.execute(text("SELECT record_id, seq FROM usage_records ORDER BY seq"))).all()
            replayed = await connection.execute(
                text(
                    "INSERT INTO usage_records (record_id, subscription_id, customer_id, usage_date, on_net_minutes, "
                    "off_net_minutes, international_minutes, sms_count, data_mb, roaming, area, radio_technology) "
                    "SELECT record_id, subscription_id, customer_id, usage_date, 1, 0, 0, 0, 1, false, 'x', '4G' "
                    "FROM usage_records ON CONFLICT (record_id, usage_date) DO NOTHING"
                )
            )
            assert replayed.rowcount == 0
        await store_record(engine, day)
        async with engine.connect() as connection:
            newest = (await connection.execute(text("SELECT max(seq) FROM usage_records"))).scalar_one()
        assert after == before
        assert newest > before[-1].seq
    finally:
        await engine.dispose()
