"""The offers service served in-process on a free port, against a migrated database of the session's
PostgreSQL, on a clock the tests move, talking to the real in-process customer service; and direct
access to the offers database to check what was (not) written."""

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.clock import ManualClock
from chassis.database import Database, async_url, create_engine
from chassis.event_consumer import EventConsumer
from chassis.server import ServiceServer
from chassis.settings import DatabaseSettings, Environment
from crm.offers.v1.next_best_action_service_pb2_grpc import NextBestActionServiceStub
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from services.offers import customer_events
from services.offers.app import OFFERS
from services.offers.customer_lines import CustomerLines
from services.offers.settings import OffersSettings
from services.offers.tariff_change_sender import TariffChangeSender
from tests.event_support import feed_end
from tools.postgres import PostgresCluster


def offers_settings(url: str, customer_target: str = "") -> OffersSettings:
    """Settings of an offers service for tests: a free port, no drain, the given customer service."""
    return OffersSettings.from_environment(
        Environment(
            {
                "OFFERS_DATABASE_URL": url,
                "OFFERS_GRPC_ADDRESS": "127.0.0.1:0",
                "OFFERS_SHUTDOWN_DRAIN_SECONDS": "0",
                "OFFERS_CUSTOMER_TARGET": customer_target,
                # Tests send accepted plan changes themselves, at the moment they choose.
                "OFFERS_PLAN_CHANGE_INTERVAL_SECONDS": "86400",
                "OFFERS_FOLLOW_CUSTOMER_FEED": "false",
            }
        )
    )


@pytest.fixture(scope="session")
def offers_database_url(postgres: PostgresCluster, worker_id: str) -> str:
    """A migrated offers database of this test worker."""
    url = postgres.ensure_database(f"offers_it_{worker_id}")
    OFFERS.migrate(offers_settings(url))
    return url


@pytest.fixture(scope="session")
def offers_clock() -> ManualClock:
    """The in-process offers service's clock: it starts at the real time and moves only forward."""
    return ManualClock()


@pytest.fixture(scope="session")
async def offers_server(
    offers_database_url: str, offers_clock: ManualClock, customer_server: ServiceServer
) -> AsyncIterator[ServiceServer]:
    """The offers service on a free port of 127.0.0.1, asking the in-process customer service."""
    settings = offers_settings(offers_database_url, f"127.0.0.1:{customer_server.port}")
    server = OFFERS.build_server(settings, clock=offers_clock)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def offers_channel(offers_server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the in-process offers service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{offers_server.port}") as channel:
        yield channel


@pytest.fixture
def offers(offers_channel: grpc.aio.Channel) -> OfferServiceStub:
    """A client of the in-process offers service."""
    return OfferServiceStub(offers_channel)


@pytest.fixture
def next_best_actions(offers_channel: grpc.aio.Channel) -> NextBestActionServiceStub:
    """A client of the in-process offers service's next-best actions."""
    return NextBestActionServiceStub(offers_channel)


@pytest.fixture(scope="session")
async def offers_engine(offers_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access to the offers database."""
    engine = create_async_engine(async_url(offers_database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def offers_database(offers_database_url: str) -> AsyncIterator[Database]:
    """The offers database, for driving the service's background work directly."""
    database = Database(create_engine(DatabaseSettings(url=offers_database_url), application_name="tests"))
    yield database
    await database.close()


@pytest.fixture
async def customer_lines(customer_server: ServiceServer) -> AsyncIterator[CustomerLines]:
    """The customer service as the offers service reads and changes its lines."""
    lines = CustomerLines(f"127.0.0.1:{customer_server.port}", deadline_seconds=5)
    yield lines
    await lines.stop()


@pytest.fixture
def plan_change_sender(
    offers_database: Database, offers_clock: ManualClock, customer_lines: CustomerLines
) -> TariffChangeSender:
    """A sender of accepted plan changes like the one the service runs, run when a test says."""
    return TariffChangeSender(offers_database, offers_clock, customer_lines)


@pytest.fixture
def apply_customer_events(
    customer_channel: grpc.aio.Channel,
    customer_engine: AsyncEngine,
    offers_database: Database,
    offers_clock: ManualClock,
) -> Callable[[], Awaitable[int]]:
    """`await apply_customer_events()` applies every customer event committed so far to the offers database."""
    consumer = EventConsumer(
        name=customer_events.CONSUMER_NAME,
        producer=customer_events.PRODUCER_NAME,
        feed=customer_channel,
        database=offers_database,
        handler=customer_events.customer_event_handler(offers_clock),
        event_types=customer_events.EVENT_TYPES,
    )

    async def catch_up() -> int:
        await feed_end(customer_engine)
        return await consumer.catch_up(timeout_seconds=60)

    return catch_up
