"""Graceful shutdown of a real service process: in-flight calls finish, health says NOT_SERVING."""

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chassis.database import async_url
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.e2e.conftest import CUSTOMER_SERVICE
from tests.processes import ANY_PORT, start_process, wait_until_serving
from tests.support import create_request, person


async def test_sigterm_lets_the_in_flight_call_finish_then_exits_cleanly(
    migrated_database_url, tmp_path_factory: pytest.TempPathFactory
):
    url = migrated_database_url("customer_shutdown")
    service = start_process(
        "customer-shutdown",
        "services.customer",
        {
            "CUSTOMER_DATABASE_URL": url,
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_GRACE_SECONDS": "20",
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "1",
        },
        Path(tmp_path_factory.mktemp("shutdown-logs")),
    )
    engine = create_async_engine(async_url(url))
    try:
        await wait_until_serving(service, CUSTOMER_SERVICE)
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = CustomerServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            created = await stub.CreateCustomer(create_request(person("Kamola", "Ergasheva")), timeout=5)
            customer_id = created.name.removeprefix("customers/")
            async with engine.connect() as blocker:
                # Hold the customer's row so that the update below is in flight when SIGTERM arrives.
                await blocker.execute(text("SELECT 1 FROM customers WHERE id = :id FOR UPDATE"), {"id": customer_id})
                update = asyncio.ensure_future(
                    stub.UpdateCustomer(
                        customer_service_pb2.UpdateCustomerRequest(
                            customer=customer_pb2.Customer(
                                name=created.name, individual=customer_pb2.Individual(middle_name="Anvarovna")
                            ),
                            update_mask=field_mask_pb2.FieldMask(paths=["individual.middle_name"]),
                        ),
                        timeout=30,
                    )
                )
                await _wait_for_lock_waiter(engine)
                service.process.send_signal(15)
                async with asyncio.timeout(10):
                    while True:
                        answer = await health.Check(health_pb2.HealthCheckRequest(service=CUSTOMER_SERVICE), timeout=2)
                        if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                            break
                        await asyncio.sleep(0.05)
                assert not update.done()
                await blocker.rollback()
            updated = await update
            assert updated.individual.middle_name == "Anvarovna"
        exit_code = await asyncio.to_thread(service.process.wait, 20)
        assert exit_code == 0, service.log()
    finally:
        service.stop()
        await engine.dispose()


async def _wait_for_lock_waiter(engine) -> None:
    """Returns once a session of the service is waiting on a row lock."""
    async with asyncio.timeout(10), engine.connect() as probe:
        while True:
            waiting = await probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'customer-service' AND wait_event_type = 'Lock'"
                )
            )
            if waiting.scalar_one() > 0:
                return
            await asyncio.sleep(0.05)
