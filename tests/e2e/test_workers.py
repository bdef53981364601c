"""Several server processes of one service on one port: the first runs everything, the others only
serve calls, and they all stop together."""

import asyncio
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import psutil
import pytest

from chassis.settings import Environment
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.processes import ServiceProcess, start_process, wait_until_serving
from tests.support import LOYALTY_SERVICE, request_id
from tools.postgres import PostgresCluster


@contextmanager
def shared_port() -> Iterator[int]:
    """A port of 127.0.0.1 held with SO_REUSEPORT (not listening): processes that share ports may bind
    it too, nothing else can take it meanwhile."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


async def open_accounts(address: str, count: int) -> None:
    """Opens accounts over separate connections, which the kernel spreads over the processes."""
    for _ in range(count):
        async with grpc.aio.insecure_channel(address) as channel:
            await LoyaltyServiceStub(channel).OpenAccount(
                loyalty_service_pb2.OpenAccountRequest(customer=f"customers/{uuid.uuid4()}", request_id=request_id()),
                timeout=10,
            )


async def started_workers(service: ServiceProcess, count: int) -> list[psutil.Process]:
    """The worker processes the service's first process started, once there are `count` of them."""
    first = psutil.Process(service.process.pid)
    async with asyncio.timeout(20):
        while len(first.children()) < count:
            await asyncio.sleep(0.05)
    return first.children()


@pytest.fixture
def loyalty_url(postgres: PostgresCluster, worker_id: str) -> str:
    url = postgres.ensure_database(f"loyalty_workers_{worker_id}")
    LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": url})))
    return url


def start_with_workers(url: str, port: int, logs: Path) -> ServiceProcess:
    return start_process(
        "loyalty-workers",
        "services.loyalty",
        {
            "LOYALTY_DATABASE_URL": url,
            "LOYALTY_GRPC_ADDRESS": f"127.0.0.1:{port}",
            "LOYALTY_WORKERS": "3",
            "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0",
        },
        logs,
    )


async def test_workers_share_the_port_and_stop_with_the_first_process(loyalty_url: str, tmp_path: Path):
    with shared_port() as port:
        service = start_with_workers(loyalty_url, port, tmp_path)
        try:
            await wait_until_serving(service, LOYALTY_SERVICE)
            workers = await started_workers(service, 2)
            await open_accounts(service.address, 30)
            workers[0].kill()  # a worker dies: the others keep serving on the port
            await open_accounts(service.address, 10)
        finally:
            code = await asyncio.to_thread(service.stop)
    assert code == 0
    assert not any(worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE for worker in workers)


async def test_workers_stop_by_themselves_when_the_first_process_is_killed(loyalty_url: str, tmp_path: Path):
    with shared_port() as port:
        service = start_with_workers(loyalty_url, port, tmp_path)
        try:
            await wait_until_serving(service, LOYALTY_SERVICE)
            workers = await started_workers(service, 2)
            service.process.kill()
            service.process.wait(10)
            gone, alive = await asyncio.to_thread(psutil.wait_procs, workers, 20)
        finally:
            service.stop()
    assert alive == [] and len(gone) == 2


def test_several_workers_on_port_zero_are_refused_at_start(loyalty_url: str, tmp_path: Path):
    service = start_process(
        "loyalty-workers-any-port",
        "services.loyalty",
        {"LOYALTY_DATABASE_URL": loyalty_url, "LOYALTY_GRPC_ADDRESS": "127.0.0.1:0", "LOYALTY_WORKERS": "2"},
        tmp_path,
    )
    assert service.process.wait(30) == 2
    assert "workers need a fixed port" in service.log()
