"""Session fixtures: a real PostgreSQL (embedded, or `CRM_POSTGRES_URL`), migrated databases, and the
customer service served in-process on a free port."""

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.database import Database, async_url, create_engine
from chassis.server import ServiceServer
from chassis.settings import DatabaseSettings, Environment
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from gateway.audit_store import migrate_gateway_database
from services.customer.app import CUSTOMER
from services.customer.settings import CustomerSettings
from tools.credentials import LocalCredentials, ensure_local_credentials
from tools.postgres import PostgresCluster, open_cluster


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """The PostgreSQL server of this test process: `CRM_POSTGRES_URL`, else a temporary embedded one."""
    cluster = open_cluster(tmp_path_factory.mktemp("postgres") / "data", temporary=True)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def migrated_database_url(postgres: PostgresCluster, worker_id: str) -> Callable[[str], str]:
    """Creates (once per run) and migrates a customer database of the given name; returns its URL.
    Names carry the test worker, so parallel workers sharing one server never meet."""
    urls: dict[str, str] = {}

    def database(name: str) -> str:
        if name not in urls:
            url = postgres.ensure_database(f"{name}_{worker_id}")
            CUSTOMER.migrate(_settings(url))
            urls[name] = url
        return urls[name]

    return database


def _settings(url: str, address: str = "127.0.0.1:0") -> CustomerSettings:
    return CustomerSettings.from_environment(
        Environment(
            {
                "CUSTOMER_DATABASE_URL": url,
                "CUSTOMER_GRPC_ADDRESS": address,
                "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
                # Concurrency tests fire a couple of hundred calls at once: they wait their turn for a
                # few slots (the pool has ten connections) instead of being refused.
                "CUSTOMER_MAX_CONCURRENT_RPCS": "16",
                "CUSTOMER_MAX_QUEUED_RPCS": "1000",
                "CUSTOMER_MAX_QUEUE_WAIT_SECONDS": "60",
            }
        )
    )


@pytest.fixture(scope="session")
def local_credentials(tmp_path_factory: pytest.TempPathFactory) -> LocalCredentials:
    """An operator CA, the gateway's certificate and a token-signing key, made once per test process."""
    return ensure_local_credentials(Path(tmp_path_factory.mktemp("credentials")))


@pytest.fixture(scope="session")
def migrated_gateway_database_url(postgres: PostgresCluster, worker_id: str) -> Callable[[str], str]:
    """Creates (once per run) and migrates a gateway database (the audit trail) of the given name."""
    urls: dict[str, str] = {}

    def database(name: str) -> str:
        if name not in urls:
            urls[name] = postgres.ensure_database(f"{name}_{worker_id}")
            migrate_gateway_database(urls[name])
        return urls[name]

    return database


@pytest.fixture(scope="session")
def customer_database_url(migrated_database_url: Callable[[str], str]) -> str:
    """The database of the in-process customer service."""
    return migrated_database_url("customer_it")


@pytest.fixture(scope="session")
async def customer_server(customer_database_url: str) -> AsyncIterator[ServiceServer]:
    """The customer service on a free port of 127.0.0.1."""
    server = CUSTOMER.build_server(_settings(customer_database_url))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def customer_engine(customer_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access to the customer database, to check what was (not) written."""
    engine = create_async_engine(async_url(customer_database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def customer_database(customer_database_url: str) -> AsyncIterator[Database]:
    """The in-process customer service's database, for driving its background work directly."""
    database = Database(create_engine(DatabaseSettings(url=customer_database_url), application_name="tests"))
    yield database
    await database.close()


@pytest.fixture(scope="session")
async def customer_channel(customer_server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the in-process customer service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{customer_server.port}") as channel:
        yield channel


@pytest.fixture
def customer_stub(customer_channel: grpc.aio.Channel) -> CustomerServiceStub:
    """A client of the in-process customer service."""
    return CustomerServiceStub(customer_channel)


@pytest.fixture(scope="session")
async def large_customer_table(migrated_database_url: Callable[[str], str]) -> AsyncIterator[AsyncEngine]:
    """A customer database holding 200,000 generated customers and lines, analysed, for query plans."""
    engine = create_async_engine(async_url(migrated_database_url("customer_plans")))
    async with engine.begin() as connection:
        await connection.execute(text(GENERATE_CUSTOMERS))
        await connection.execute(text(GENERATE_LINES))
        await connection.execute(text("ANALYZE customers"))
        await connection.execute(text("ANALYZE subscriptions"))
    yield engine
    await engine.dispose()


GENERATE_CUSTOMERS = """
INSERT INTO customers (id, party_type, given_name, family_name, contact_media, phone_numbers, region_key,
    search_key, retailer_id, status, churn_reason, create_time, creator, update_time, updater, version)
SELECT gen_random_uuid(), 'individual', 'given' || n, 'family' || n, '[]',
    ARRAY['+99890' || lpad(n::text, 7, '0')],
    (ARRAY['toshkent', 'samarqand', 'fergana', 'buxoro', 'kyiv', 'lviv', 'ha noi', 'moskva'])[1 + n % 8],
    'given' || n || ' ' || md5(n::text) || ' family' || n,
    CASE WHEN n % 50 = 0 THEN 'retailers/chain-' || (n % 40) ELSE '' END,
    (ARRAY['ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'ACTIVE', 'PROSPECT', 'SUSPENDED', 'CHURNED'])[1 + n % 9],
    CASE WHEN n % 9 = 8 THEN 'VOLUNTARY' END,
    now(), 'plans', now(), 'plans', 1
FROM generate_series(1, 200000) AS n
"""

GENERATE_LINES = """
INSERT INTO subscriptions (id, customer_id, msisdn, tariff_plan_id, activation_date, status, purpose,
    home_region, create_time, update_time, version)
SELECT gen_random_uuid(), id, '+99891' || lpad((row_number() OVER ())::text, 7, '0'), 'plans/uz-start',
    current_date - 100, 'ACTIVE', 'PERSONAL', '', now(), now(), 1
FROM customers
"""
