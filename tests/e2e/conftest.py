"""The customer service and the gateway as separate processes, exporting telemetry to a local receiver."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.gateway_support import employee_channel, gateway_environment
from tests.otlp_receiver import OtlpReceiver
from tests.processes import ANY_PORT, ServiceProcess, refused_address, start_process, wait_until_serving
from tools.credentials import LocalCredentials

CUSTOMER_SERVICE = "crm.customer.v1.CustomerService"
LOYALTY_SERVICE = "crm.loyalty.v1.LoyaltyService"
ALICE_ROLES = ("agent", "supervisor")


@dataclass
class RunningSystem:
    """The processes under test and what they export."""

    customer: ServiceProcess
    gateway: ServiceProcess
    telemetry: OtlpReceiver


@pytest.fixture(scope="session")
async def running_system(
    migrated_database_url,
    migrated_gateway_database_url,
    local_credentials: LocalCredentials,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[RunningSystem]:
    receiver = OtlpReceiver()
    await receiver.start()
    logs = Path(tmp_path_factory.mktemp("e2e-logs"))
    telemetry = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    customer = start_process(
        "customer",
        "services.customer",
        {
            **telemetry,
            "CUSTOMER_DATABASE_URL": migrated_database_url("customer_e2e"),
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0.2",
        },
        logs,
    )
    gateway: ServiceProcess | None = None
    try:
        await wait_until_serving(customer, CUSTOMER_SERVICE)
        with refused_address() as no_loyalty:
            gateway = start_process(
                "gateway",
                "gateway",
                {
                    **telemetry,
                    **gateway_environment(
                        local_credentials,
                        migrated_gateway_database_url("gateway_e2e"),
                        CUSTOMER_TARGET=customer.address,
                        # No loyalty service runs here: the gateway must serve the rest without it.
                        LOYALTY_TARGET=no_loyalty,
                        SHUTDOWN_DRAIN_SECONDS="0.2",
                    ),
                },
                logs,
            )
            await wait_until_serving(gateway, CUSTOMER_SERVICE)
            yield RunningSystem(customer, gateway, receiver)
    finally:
        # Stop in threads: the processes flush telemetry to the receiver on this event loop as they exit.
        if gateway is not None:
            await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(customer.stop)
        await receiver.stop()


@pytest.fixture(scope="session")
async def gateway_channel(
    running_system: RunningSystem, local_credentials: LocalCredentials
) -> AsyncIterator[grpc.aio.Channel]:
    """The gateway as the supervising agent alice calls it, with her signed token."""
    async with employee_channel(running_system.gateway, local_credentials, ALICE_ROLES, subject="alice") as channel:
        yield channel


@pytest.fixture
def gateway_stub(gateway_channel: grpc.aio.Channel) -> CustomerServiceStub:
    return CustomerServiceStub(gateway_channel)
