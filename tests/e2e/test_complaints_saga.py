"""The goodwill saga across real processes: the complaints service is SIGKILLed right after a
resolution with compensation is committed and before its worker could send the credit; restarted,
it credits the customer's loyalty account exactly once, and the ticket shows the credit granted.
The customer, loyalty and complaints services run as separate processes on their own databases."""

import asyncio
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.database import async_url
from chassis.settings import Environment
from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.complaints.app import COMPLAINTS
from services.complaints.complaints import goodwill_request_id
from services.complaints.settings import ComplaintsSettings
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.processes import ANY_PORT, ServiceProcess, start_process, wait_until_serving
from tests.support import create_request, person, request_id
from tools.postgres import PostgresCluster

GOODWILL_POINTS = 750
NEVER_SECONDS = "86400"
"""An interval no worker reaches within the test: the first process must not have sent the credit."""
SOON_SECONDS = "0.2"


def fresh_database(postgres: PostgresCluster, name: str) -> str:
    postgres.drop_database(name)
    return postgres.ensure_database(name)


async def goodwill_entries(engine: AsyncEngine, request: str) -> list[tuple[str, int]]:
    """(account, points) of every goodwill entry of the loyalty ledger posted under `request`."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT account_id, points FROM ledger_entries WHERE kind = 'GOODWILL' AND request_id = :r"),
            {"r": request},
        )
        return [(f"accounts/{row.account_id}", int(row.points)) for row in rows]


async def compensation_row(engine: AsyncEngine, complaint: str) -> tuple[str, int]:
    """(state, attempts) of a ticket's compensation in the complaints database."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT state, attempts FROM compensations WHERE complaint_id = :c"),
                {"c": uuid.UUID(complaint.removeprefix("complaints/"))},
            )
        ).one()
        return str(row.state), int(row.attempts)


async def test_a_complaints_service_killed_between_resolution_and_credit_credits_exactly_once_after_restart(
    postgres: PostgresCluster,
    worker_id: str,
    migrated_database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
):
    logs = Path(tmp_path_factory.mktemp("complaints-saga-logs"))
    loyalty_url = fresh_database(postgres, f"loyalty_saga_{worker_id}")
    LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": loyalty_url})))
    complaints_url = fresh_database(postgres, f"complaints_saga_{worker_id}")
    COMPLAINTS.migrate(ComplaintsSettings.from_environment(Environment({"COMPLAINTS_DATABASE_URL": complaints_url})))
    customer = start_process(
        "customer",
        "services.customer",
        {
            "CUSTOMER_DATABASE_URL": migrated_database_url("customer_saga"),
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
        },
        logs,
    )
    loyalty = start_process(
        "loyalty",
        "services.loyalty",
        {
            "LOYALTY_DATABASE_URL": loyalty_url,
            "LOYALTY_GRPC_ADDRESS": ANY_PORT,
            "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0",
            "LOYALTY_SCHEDULE_INTERVAL_SECONDS": NEVER_SECONDS,
        },
        logs,
    )
    running = [customer, loyalty]

    def start_complaints(run: int, compensation_interval: str) -> ServiceProcess:
        process = start_process(
            f"complaints-{run}",
            "services.complaints",
            {
                "COMPLAINTS_DATABASE_URL": complaints_url,
                "COMPLAINTS_GRPC_ADDRESS": ANY_PORT,
                "COMPLAINTS_SHUTDOWN_DRAIN_SECONDS": "0",
                "COMPLAINTS_CUSTOMER_TARGET": customer.address,
                "COMPLAINTS_LOYALTY_TARGET": loyalty.address,
                # The schedule sends due compensations too: it stays out of the way in every run.
                "COMPLAINTS_SCHEDULE_INTERVAL_SECONDS": NEVER_SECONDS,
                "COMPLAINTS_COMPENSATION_INTERVAL_SECONDS": compensation_interval,
            },
            logs,
        )
        running.append(process)
        return process

    loyalty_engine = create_async_engine(async_url(loyalty_url))
    complaints_engine = create_async_engine(async_url(complaints_url))
    try:
        await asyncio.gather(wait_until_serving(customer), wait_until_serving(loyalty))
        first = start_complaints(1, compensation_interval=NEVER_SECONDS)
        await wait_until_serving(first)
        async with grpc.aio.insecure_channel(customer.address) as channel:
            owner = (await CustomerServiceStub(channel).CreateCustomer(create_request(person()), timeout=10)).name
        async with grpc.aio.insecure_channel(loyalty.address) as channel:
            account = await LoyaltyServiceStub(channel).OpenAccount(
                loyalty_service_pb2.OpenAccountRequest(customer=owner, request_id=request_id()), timeout=10
            )

        async with grpc.aio.insecure_channel(first.address) as channel:
            complaints = ComplaintServiceStub(channel)
            filed = await complaints.CreateComplaint(
                complaint_service_pb2.CreateComplaintRequest(
                    complaint=complaint_pb2.Complaint(
                        customer=owner,
                        type=complaint_pb2.COMPLAINT_TYPE_COMPLAINT,
                        category=complaint_pb2.COMPLAINT_CATEGORY_NETWORK,
                        description="Qishloqda 4G yoʻq — нет 4G в селе",
                        channel=common_pb2.CHANNEL_CALL_CENTRE,
                    ),
                    request_id=request_id(),
                ),
                timeout=10,
            )
            await complaints.StartComplaint(
                complaint_service_pb2.StartComplaintRequest(name=filed.name, request_id=request_id()), timeout=10
            )
            resolved = await complaints.ResolveComplaint(
                complaint_service_pb2.ResolveComplaintRequest(
                    name=filed.name,
                    resolution=complaint_pb2.Resolution(
                        text="Tower repaired; goodwill points for the outage",
                        code="network-fixed",
                        compensation_points=GOODWILL_POINTS,
                    ),
                    request_id=request_id(),
                ),
                timeout=10,
            )
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
        assert resolved.compensation.state == complaint_pb2.COMPENSATION_STATE_PENDING
        request = goodwill_request_id(uuid.UUID(filed.name.removeprefix("complaints/")))
        # The window was real: the resolution and its pending credit were committed, nothing was sent.
        assert await compensation_row(complaints_engine, filed.name) == ("pending", 0)
        assert await goodwill_entries(loyalty_engine, request) == []

        second = start_complaints(2, compensation_interval=SOON_SECONDS)
        await wait_until_serving(second)
        async with grpc.aio.insecure_channel(second.address) as channel:
            complaints = ComplaintServiceStub(channel)
            async with asyncio.timeout(30):
                while True:
                    got = await complaints.GetComplaint(
                        complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5
                    )
                    if got.compensation.state != complaint_pb2.COMPENSATION_STATE_PENDING:
                        break
                    await asyncio.sleep(0.1)
            # Further rounds of the sender find nothing left to send.
            await asyncio.sleep(1.0)
            after = await complaints.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)

        assert await goodwill_entries(loyalty_engine, request) == [(account.name, GOODWILL_POINTS)]
        assert (got.compensation.state, got.compensation.points, got.compensation.attempts) == (
            complaint_pb2.COMPENSATION_STATE_GRANTED,
            GOODWILL_POINTS,
            1,
        )
        assert got.compensation.ledger_entry.startswith(f"{account.name}/entries/")
        assert after.compensation == got.compensation
        async with grpc.aio.insecure_channel(loyalty.address) as channel:
            balance = await LoyaltyServiceStub(channel).GetBalance(
                loyalty_service_pb2.GetBalanceRequest(name=f"{account.name}/balance"), timeout=5
            )
        assert balance.available_points == GOODWILL_POINTS
    finally:
        await loyalty_engine.dispose()
        await complaints_engine.dispose()
        for process in reversed(running):
            await asyncio.to_thread(process.stop)
