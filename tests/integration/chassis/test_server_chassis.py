"""What every server built by the chassis offers: health that follows the database, Watch, and a
port of its own."""

import asyncio
import os
import re
import socket
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chassis.server import ListenError, ServiceServer
from chassis.settings import Environment
from services.customer.app import CUSTOMER
from services.customer.settings import CustomerSettings
from tests.processes import ROOT
from tests.support import CUSTOMER_SERVICE as SERVICE_NAME


async def test_health_watch_streams_the_serving_status(customer_server: ServiceServer):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{customer_server.port}") as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5
        )
        first = await stream.read()
        stream.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_is_not_serving_while_the_database_is_unreachable(tmp_path):
    unreachable = f"postgresql://postgres@/crm_customer?host={tmp_path}"  # no server listens there
    settings = CustomerSettings.from_environment(
        Environment(
            {
                "CUSTOMER_DATABASE_URL": unreachable,
                "CUSTOMER_GRPC_ADDRESS": "127.0.0.1:0",
                "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
                "CUSTOMER_DATABASE_STATEMENT_TIMEOUT_SECONDS": "1",
            }
        )
    )
    server = CUSTOMER.build_server(settings)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", SERVICE_NAME):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await server.stop()


async def test_a_server_on_a_port_another_server_holds_is_refused_naming_the_address(
    customer_server: ServiceServer, customer_database_url: str
):
    taken = f"127.0.0.1:{customer_server.port}"
    settings = CustomerSettings.from_environment(
        Environment({"CUSTOMER_DATABASE_URL": customer_database_url, "CUSTOMER_GRPC_ADDRESS": taken})
    )
    with pytest.raises(ListenError, match=re.escape(taken)):
        CUSTOMER.build_server(settings)


def test_a_service_process_started_on_a_taken_port_exits_with_a_clear_message(customer_database_url: str):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        finished = subprocess.run(
            [sys.executable, "-m", "services.customer"],
            cwd=ROOT,
            env={**os.environ, "CUSTOMER_DATABASE_URL": customer_database_url, "CUSTOMER_GRPC_ADDRESS": taken},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert finished.returncode == 2
    assert f"customer-service: cannot listen on {taken}: the port is taken" in finished.stderr
    assert "Traceback" not in finished.stderr


async def test_a_watcher_sees_not_serving_then_its_stream_ends_so_the_stop_does_not_wait_out_the_grace(
    customer_database_url: str,
):
    settings = CustomerSettings.from_environment(
        Environment(
            {
                "CUSTOMER_DATABASE_URL": customer_database_url,
                "CUSTOMER_GRPC_ADDRESS": "127.0.0.1:0",
                "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0.2",
                "CUSTOMER_SHUTDOWN_GRACE_SECONDS": "30",
            }
        )
    )
    server = CUSTOMER.build_server(settings)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=60
        )
        # read() only: the iterator and read/write styles may not be mixed on one call
        assert (await stream.read()).status == health_pb2.HealthCheckResponse.SERVING
        started = asyncio.get_running_loop().time()
        stopping = asyncio.create_task(server.stop())
        seen = []
        while (answer := await stream.read()) is not grpc.aio.EOF:
            seen.append(answer.status)
        await stopping
        took = asyncio.get_running_loop().time() - started
        assert seen == [health_pb2.HealthCheckResponse.NOT_SERVING]
        assert await stream.code() == grpc.StatusCode.OK
    assert took < 10  # far below the 30 s grace that an open watch would hold the stop for
