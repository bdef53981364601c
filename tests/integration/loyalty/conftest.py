"""The loyalty service served in-process on a free port, against a migrated database of the session's
PostgreSQL, on a clock the tests move, and direct access to that database to check what was (not)
written."""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.clock import ManualClock
from chassis.database import async_url
from chassis.server import ServiceServer
from chassis.settings import Environment
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, program_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.support import request_id
from tools.postgres import PostgresCluster


def _settings(url: str) -> LoyaltySettings:
    return LoyaltySettings.from_environment(
        Environment(
            {
                "LOYALTY_DATABASE_URL": url,
                "LOYALTY_GRPC_ADDRESS": "127.0.0.1:0",
                "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0",
                # Concurrency tests fire a couple of hundred calls at once: they wait their turn for a
                # few slots (the pool has ten connections) instead of being refused.
                "LOYALTY_MAX_CONCURRENT_RPCS": "16",
                "LOYALTY_MAX_QUEUED_RPCS": "1000",
                "LOYALTY_MAX_QUEUE_WAIT_SECONDS": "60",
                # Tests run the scheduled work themselves (RunScheduledWork), at the moment they choose.
                "LOYALTY_SCHEDULE_INTERVAL_SECONDS": "86400",
            }
        )
    )


@pytest.fixture(scope="session")
def loyalty_database_url(postgres: PostgresCluster, worker_id: str) -> str:
    """A migrated loyalty database of this test worker."""
    url = postgres.ensure_database(f"loyalty_it_{worker_id}")
    LOYALTY.migrate(_settings(url))
    return url


@pytest.fixture(scope="session")
def loyalty_clock() -> ManualClock:
    """The in-process loyalty service's clock: it starts at the real time and moves only forward, when
    a test moves it. Tests share it, so a test reads times relative to `now()`, never absolute ones."""
    return ManualClock()


@pytest.fixture(scope="session")
async def loyalty_server(loyalty_database_url: str, loyalty_clock: ManualClock) -> AsyncIterator[ServiceServer]:
    """The loyalty service on a free port of 127.0.0.1, reading the time from `loyalty_clock`."""
    server = LOYALTY.build_server(_settings(loyalty_database_url), clock=loyalty_clock)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def loyalty_channel(loyalty_server: ServiceServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the in-process loyalty service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{loyalty_server.port}") as channel:
        yield channel


@pytest.fixture
def loyalty_stub(loyalty_channel: grpc.aio.Channel) -> LoyaltyServiceStub:
    """A client of the in-process loyalty service."""
    return LoyaltyServiceStub(loyalty_channel)


@pytest.fixture(scope="session")
async def loyalty_engine(loyalty_database_url: str) -> AsyncIterator[AsyncEngine]:
    """Direct access to the loyalty database."""
    engine = create_async_engine(async_url(loyalty_database_url))
    yield engine
    await engine.dispose()


@pytest.fixture
async def account(loyalty_stub: LoyaltyServiceStub) -> loyalty_pb2.Account:
    """A freshly opened, empty account."""
    return await loyalty_stub.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=f"customers/{uuid.uuid4()}", request_id=request_id()),
        timeout=5,
    )


ProgramChange = Callable[[program_pb2.Program], None]


@pytest.fixture
def program_changed(
    loyalty_stub: LoyaltyServiceStub,
) -> Callable[[ProgramChange], AbstractAsyncContextManager[program_pb2.Program]]:
    """`async with program_changed(edit) as program:` runs with the program as `edit` leaves it,
    then puts the previous program back (the database is shared by the worker's tests)."""

    @asynccontextmanager
    async def changed(edit: ProgramChange) -> AsyncIterator[program_pb2.Program]:
        before = await loyalty_stub.GetProgram(loyalty_service_pb2.GetProgramRequest(name="program"), timeout=5)
        wanted = program_pb2.Program()
        wanted.CopyFrom(before)
        edit(wanted)
        updated = await loyalty_stub.UpdateProgram(
            loyalty_service_pb2.UpdateProgramRequest(program=wanted, request_id=request_id()), timeout=5
        )
        try:
            yield updated
        finally:
            before.etag = updated.etag
            await loyalty_stub.UpdateProgram(
                loyalty_service_pb2.UpdateProgramRequest(program=before, request_id=request_id()), timeout=5
            )

    return changed
