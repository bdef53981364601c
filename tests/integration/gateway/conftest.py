"""The gateway's own database, migrated, on the session's PostgreSQL; the audit service served by a
real chassis server on a free port of 127.0.0.1; direct access to the database to check what was
(not) written."""

from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.database import Database, async_url, create_engine
from chassis.server import ServiceServer, build_server
from chassis.settings import DatabaseSettings, ServerSettings
from crm.gateway.v1 import audit_pb2
from crm.gateway.v1.audit_pb2_grpc import AuditServiceStub, add_AuditServiceServicer_to_server
from gateway.audit_servicer import AuditServicer
from gateway.audit_store import migrate_gateway_database
from gateway.forwarding import ERROR_DOMAIN
from tools.postgres import PostgresCluster

AUDIT_SERVICE = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name


@pytest.fixture(scope="session")
def gateway_database_url(postgres: PostgresCluster, worker_id: str) -> str:
    """A migrated gateway database of this test worker."""
    url = postgres.ensure_database(f"gateway_it_{worker_id}")
    migrate_gateway_database(url)
    return url


@pytest.fixture(scope="session")
async def gateway_engine(gateway_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access to the gateway database."""
    engine = create_async_engine(async_url(gateway_database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def gateway_database(gateway_database_url: str) -> AsyncIterator[Database]:
    """The gateway database as the gateway opens it."""
    database = Database(create_engine(DatabaseSettings(url=gateway_database_url), application_name="tests"))
    yield database
    await database.close()


@pytest.fixture(scope="session")
async def audit_server(gateway_database_url: str) -> AsyncIterator[ServiceServer]:
    """A chassis server of the audit service on a free port of 127.0.0.1."""
    database = Database(create_engine(DatabaseSettings(url=gateway_database_url), application_name="audit-tests"))
    server = build_server(
        settings=ServerSettings(address="127.0.0.1:0", shutdown_drain_seconds=0, shutdown_grace_seconds=1),
        error_domain=ERROR_DOMAIN,
        service_names=[AUDIT_SERVICE],
        register=lambda grpc_server: add_AuditServiceServicer_to_server(AuditServicer(database), grpc_server),
        trust_caller_metadata=False,
    )
    server.on_stop.append(database.close)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def audit_channel(audit_server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the audit service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{audit_server.port}") as channel:
        yield channel


@pytest.fixture
def audit_stub(audit_channel: grpc.aio.Channel) -> AuditServiceStub:
    """A client of the audit service."""
    return AuditServiceStub(audit_channel)
