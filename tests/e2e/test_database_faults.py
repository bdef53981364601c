"""Faults under load, end to end: sixteen clients post points through the gateway to the loyalty
service while its PostgreSQL is restarted or killed, or the service itself is killed. Every client
retries a failed attempt with the same request_id; every acknowledged posting must then be in the
ledger exactly once, every failure must say it is transient and why, and health must follow the
outage down and back up. PostgreSQL, the loyalty service and the gateway run as separate processes;
the server is this module's own, since the tests stop and kill it."""

import asyncio
import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from chassis.database import async_url
from chassis.settings import Environment
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.fault_support import (
    NOT_SERVING,
    SERVING,
    UNREACHABLE,
    EarnLoad,
    FaultRun,
    HealthRecorder,
    RecordedEntry,
    accounts_state,
    fault_under_load,
    kill_postmaster,
    ledger_by_request,
    open_accounts,
    postmaster_socket_dir,
    restart_postgres_fast,
    start_postgres,
    stop_postgres,
)
from tests.gateway_support import employee_channel, gateway_environment
from tests.processes import ANY_PORT, ServiceProcess, refused_address, start_process, wait_until_serving
from tools.credentials import LocalCredentials
from tools.postgres import PostgresCluster, start_embedded

LOYALTY_SERVICE = "crm.loyalty.v1.LoyaltyService"
ACCOUNTS = 8
CLERK = "loyalty-desk-clerk-7"
"""The back-office employee every load client posts as, with a signed token."""
CLERK_ROLES = ("back-office",)
# The clients post as one clerk as fast as they can: their rate is not what these tests are about.
UNTHROTTLED = {"EMPLOYEE_RATE_PER_SECOND": "100000", "EMPLOYEE_RATE_BURST": "100000"}
# What the chassis answers while its database is unreachable, busy or too slow: retry later.
TRANSIENT_DATABASE_FAILURES = {
    *(
        (grpc.StatusCode.UNAVAILABLE, reason)
        for reason in (
            "DATABASE_CONNECTION_LOST",
            "DATABASE_SHUTTING_DOWN",
            "DATABASE_STARTING",
            "DATABASE_UNAVAILABLE",
            "DATABASE_BUSY",
        )
    ),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "STATEMENT_TIMEOUT"),
}


@dataclass
class FaultySystem:
    """The module's PostgreSQL, loyalty service and gateway; the loyalty process is replaced when killed."""

    data_dir: Path
    """The PostgreSQL server's data folder, by which it is restarted, killed and started."""
    loyalty_url: str
    loyalty: ServiceProcess
    gateway: ServiceProcess
    credentials: LocalCredentials
    logs: Path
    engine: AsyncEngine
    """Reads the loyalty database directly, one fresh connection per use (the server comes and goes)."""


def _start_loyalty(url: str, logs: Path, name: str, address: str = ANY_PORT) -> ServiceProcess:
    return start_process(
        name,
        "services.loyalty",
        {"LOYALTY_DATABASE_URL": url, "LOYALTY_GRPC_ADDRESS": address, "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0"},
        logs,
    )


def _private_server() -> tuple[Path, PostgresCluster]:
    """This module's own embedded server, even when CRM_POSTGRES_URL names a shared one: the tests stop
    and kill it. Its folder is outside pytest's temporary folders, which another pytest run may close
    to all but root while the server, running as its own user, still has to reach its socket and log."""
    root = Path(tempfile.mkdtemp(prefix="crm-database-faults-"))
    root.chmod(0o755)
    return root, start_embedded(root / "postgres", temporary=True)


@pytest.fixture(scope="module")
async def system(
    local_credentials: LocalCredentials,
    migrated_gateway_database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FaultySystem]:
    root, cluster = _private_server()
    assert cluster.embedded_server is not None
    engine = create_async_engine(async_url(cluster.database_url("loyalty_faults")), poolclass=NullPool)
    started: list[ServiceProcess] = []
    running: FaultySystem | None = None
    try:
        url = cluster.ensure_database("loyalty_faults")
        LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": url})))
        logs = Path(tmp_path_factory.mktemp("database-faults-logs"))
        loyalty = _start_loyalty(url, logs, "loyalty")
        started.append(loyalty)
        await wait_until_serving(loyalty, LOYALTY_SERVICE)
        with refused_address() as no_customer_service:
            gateway = start_process(
                "gateway",
                "gateway",
                gateway_environment(
                    local_credentials,
                    # On the tests' shared server: the faults here are the loyalty database's own.
                    migrated_gateway_database_url("gateway_faults"),
                    CUSTOMER_TARGET=no_customer_service,
                    LOYALTY_TARGET=loyalty.address,
                    **UNTHROTTLED,
                ),
                logs,
            )
            started.append(gateway)
            await wait_until_serving(gateway, LOYALTY_SERVICE)
            running = FaultySystem(
                Path(cluster.embedded_server.pgdata), url, loyalty, gateway, local_credentials, logs, engine
            )
            yield running
    finally:
        if running is not None:
            started.append(running.loyalty)  # the one started last, when the first was killed
        for process in reversed(started):
            await asyncio.to_thread(process.stop)
        await engine.dispose()
        try:
            # By its folder: the postmaster running now may not be the one the cluster started.
            await asyncio.to_thread(stop_postgres, Path(cluster.embedded_server.pgdata))
        finally:
            await asyncio.to_thread(cluster.stop)
            shutil.rmtree(root, ignore_errors=True)


async def _earning_through_the_gateway_while(
    system: FaultySystem, health: HealthRecorder, fault: Callable[[], Awaitable[None]]
) -> FaultRun:
    async with employee_channel(system.gateway, system.credentials, CLERK_ROLES, subject=CLERK) as channel:
        stub = LoyaltyServiceStub(channel)
        load = EarnLoad(stub, await open_accounts(stub, ACCOUNTS))
        return await fault_under_load(load, health, fault)


async def _assert_each_acknowledged_posting_has_exactly_one_entry(run: FaultRun, engine: AsyncEngine) -> None:
    load = run.load
    assert load.abandoned == []
    recorded = await ledger_by_request(engine, list(load.accounts_by_request))
    assert recorded == {
        request_id: RecordedEntry(
            account=load.accounts_by_request[request_id],
            entries=1,
            points=entry.points,
            numbers=(int(entry.name.rsplit("/", 1)[1]),),
        )
        for request_id, entry in load.acknowledged.items()
    }
    expected_accounts = dict.fromkeys(load.accounts, (0, 0))
    for request_id, entry in load.acknowledged.items():
        balance, entries = expected_accounts[load.accounts_by_request[request_id]]
        expected_accounts[load.accounts_by_request[request_id]] = (balance + entry.points, entries + 1)
    assert await accounts_state(engine, load.accounts) == expected_accounts


def _assert_failures_are_transient_database_conditions(run: FaultRun) -> None:
    failures = Counter((attempt.code, attempt.reason) for attempt in run.load.failures())
    assert set(failures) <= TRANSIENT_DATABASE_FAILURES, failures


def _assert_health_went_down_and_came_back(health: HealthRecorder, fault_time: float) -> None:
    statuses = health.since(fault_time)
    assert statuses[0] == SERVING, statuses
    assert NOT_SERVING in statuses, statuses
    assert statuses[-1] == SERVING, statuses
    # The server itself kept answering: only its readiness changed.
    assert UNREACHABLE not in statuses, statuses


async def test_postings_through_a_fast_postgres_restart_land_once_fail_unavailable_and_readiness_dips(
    system: FaultySystem,
):
    async def restart() -> None:
        await asyncio.to_thread(restart_postgres_fast, system.data_dir)

    health = HealthRecorder(system.loyalty.address, LOYALTY_SERVICE)
    run = await _earning_through_the_gateway_while(system, health, restart)
    print(run.figures("PostgreSQL restarted (fast shutdown)"))

    await _assert_each_acknowledged_posting_has_exactly_one_entry(run, system.engine)
    # A short outage may not reach a client at all: the gateway retries UNAVAILABLE itself.
    _assert_failures_are_transient_database_conditions(run)
    _assert_health_went_down_and_came_back(health, run.fault_time)


async def test_postings_through_a_killed_postmaster_land_once_fail_unavailable_and_readiness_dips(
    system: FaultySystem,
):
    socket_dir = postmaster_socket_dir(system.data_dir)

    async def kill_and_start() -> None:
        await asyncio.to_thread(kill_postmaster, system.data_dir)
        await asyncio.to_thread(start_postgres, system.data_dir, socket_dir)

    health = HealthRecorder(system.loyalty.address, LOYALTY_SERVICE)
    run = await _earning_through_the_gateway_while(system, health, kill_and_start)
    print(run.figures("PostgreSQL postmaster SIGKILLed and started again"))

    assert run.load.failures(), "the outage never reached a client"
    await _assert_each_acknowledged_posting_has_exactly_one_entry(run, system.engine)
    _assert_failures_are_transient_database_conditions(run)
    _assert_health_went_down_and_came_back(health, run.fault_time)


async def test_postings_through_a_killed_loyalty_service_land_once_and_fail_naming_the_service_not_its_address(
    system: FaultySystem,
):
    address = system.loyalty.address

    async def kill_and_restart() -> None:
        system.loyalty.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(system.loyalty.process.wait, 10)
        # The same port, so the gateway's target stays valid.
        system.loyalty = _start_loyalty(system.loyalty_url, system.logs, "loyalty-restarted", address)
        await wait_until_serving(system.loyalty, LOYALTY_SERVICE, timeout_seconds=60)
        assert system.loyalty.address == address

    # The loyalty process itself goes away: what callers can know is what the gateway says of it.
    health = HealthRecorder(system.gateway.health_address, LOYALTY_SERVICE)
    run = await _earning_through_the_gateway_while(system, health, kill_and_restart)
    print(run.figures("loyalty service SIGKILLed and restarted on its port"))

    failures = run.load.failures()
    assert failures, "the outage never reached a client"
    await _assert_each_acknowledged_posting_has_exactly_one_entry(run, system.engine)
    assert Counter((a.code, a.reason) for a in failures) == {
        (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE"): len(failures)
    }
    messages = {a.message for a in failures}
    assert all(LOYALTY_SERVICE in message for message in messages), messages
    assert not any("127.0.0.1" in message or "ipv4:" in message for message in messages), messages
    assert all(a.metadata == {"service": LOYALTY_SERVICE} for a in failures)
    _assert_health_went_down_and_came_back(health, run.fault_time)
