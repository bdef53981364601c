"""The complaints service served in-process on a free port against a migrated database of the
session's PostgreSQL, on a clock the tests move, with the real customer service (tests/conftest.py)
and a real loyalty service of its own database beside it."""

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.clock import ManualClock
from chassis.database import Database, async_url, create_engine
from chassis.server import ServiceServer
from chassis.settings import DatabaseSettings, Environment
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.complaints.app import COMPLAINTS
from services.complaints.settings import ComplaintsSettings
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.support import create_request, person
from tools.postgres import PostgresCluster


def _loyalty_settings(url: str) -> LoyaltySettings:
    return LoyaltySettings.from_environment(
        Environment(
            {
                "LOYALTY_DATABASE_URL": url,
                "LOYALTY_GRPC_ADDRESS": "127.0.0.1:0",
                "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0",
                "LOYALTY_SCHEDULE_INTERVAL_SECONDS": "86400",
            }
        )
    )


def _settings(url: str, customer_port: int, loyalty_port: int) -> ComplaintsSettings:
    return ComplaintsSettings.from_environment(
        Environment(
            {
                "COMPLAINTS_DATABASE_URL": url,
                "COMPLAINTS_GRPC_ADDRESS": "127.0.0.1:0",
                "COMPLAINTS_SHUTDOWN_DRAIN_SECONDS": "0",
                "COMPLAINTS_CUSTOMER_TARGET": f"127.0.0.1:{customer_port}",
                "COMPLAINTS_LOYALTY_TARGET": f"127.0.0.1:{loyalty_port}",
                "COMPLAINTS_MAX_CONCURRENT_RPCS": "16",
                "COMPLAINTS_MAX_QUEUED_RPCS": "1000",
                "COMPLAINTS_MAX_QUEUE_WAIT_SECONDS": "60",
                # Tests run the scheduled work themselves (RunScheduledWork), at the moment they choose.
                "COMPLAINTS_SCHEDULE_INTERVAL_SECONDS": "86400",
                "COMPLAINTS_COMPENSATION_INTERVAL_SECONDS": "86400",
            }
        )
    )


@pytest.fixture(scope="session")
def complaints_database_url(postgres: PostgresCluster, worker_id: str) -> str:
    """A migrated complaints database of this test worker."""
    url = postgres.ensure_database(f"complaints_it_{worker_id}")
    COMPLAINTS.migrate(ComplaintsSettings.from_environment(Environment({"COMPLAINTS_DATABASE_URL": url})))
    return url


@pytest.fixture(scope="session")
async def goodwill_loyalty_server(postgres: PostgresCluster, worker_id: str) -> AsyncIterator[ServiceServer]:
    """A loyalty service of its own database, credited by the complaints service."""
    url = postgres.ensure_database(f"complaints_loyalty_it_{worker_id}")
    settings = _loyalty_settings(url)
    LOYALTY.migrate(settings)
    server = LOYALTY.build_server(settings)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def complaints_clock() -> ManualClock:
    """The complaints service's clock; tests move it forward only, and read times relative to it."""
    return ManualClock()


@pytest.fixture(scope="session")
async def complaints_server(
    complaints_database_url: str,
    complaints_clock: ManualClock,
    customer_server: ServiceServer,
    goodwill_loyalty_server: ServiceServer,
) -> AsyncIterator[ServiceServer]:
    """The complaints service on a free port, asking the in-process customer and loyalty services."""
    settings = _settings(complaints_database_url, customer_server.port, goodwill_loyalty_server.port)
    server = COMPLAINTS.build_server(settings, clock=complaints_clock)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def complaints_channel(complaints_server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the in-process complaints service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{complaints_server.port}") as channel:
        yield channel


@pytest.fixture
def complaints_stub(complaints_channel: grpc.aio.Channel) -> ComplaintServiceStub:
    """A client of the in-process complaints service."""
    return ComplaintServiceStub(complaints_channel)


@pytest.fixture(scope="session")
async def goodwill_loyalty_channel(goodwill_loyalty_server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the loyalty service the complaints service credits."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{goodwill_loyalty_server.port}") as channel:
        yield channel


@pytest.fixture
def loyalty(goodwill_loyalty_channel: grpc.aio.Channel) -> LoyaltyServiceStub:
    """A client of the loyalty service the complaints service credits."""
    return LoyaltyServiceStub(goodwill_loyalty_channel)


@pytest.fixture(scope="session")
async def complaints_engine(complaints_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access to the complaints database, to check what was (not) written."""
    engine = create_async_engine(async_url(complaints_database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def complaints_database(complaints_database_url: str) -> AsyncIterator[Database]:
    """The complaints database, for driving its event handlers directly."""
    database = Database(create_engine(DatabaseSettings(url=complaints_database_url), application_name="tests"))
    yield database
    await database.close()


@pytest.fixture
async def customer(customer_stub: CustomerServiceStub) -> str:
    """A freshly created customer of the real customer service."""
    return (await customer_stub.CreateCustomer(create_request(person()), timeout=5)).name


def department_id() -> str:
    """A fresh department id."""
    return f"dept-{uuid.uuid4().hex[:10]}"
