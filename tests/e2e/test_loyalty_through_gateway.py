"""The loyalty service and the gateway as separate processes: a partner shop's counter reserves and
hands over a handset through the gateway, refusals keep their reasons, internal work stays inside."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from chassis.settings import Environment
from chassis.status import status_of
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, rewards_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.processes import ANY_PORT, ServiceProcess, refused_address, start_process, wait_until_serving
from tests.support import failure, request_id
from tools.postgres import PostgresCluster

LOYALTY_SERVICE = "crm.loyalty.v1.LoyaltyService"
COUNTER = (("x-crm-user", "texnomart-chilonzor-counter-2"),)
PARTNER = "retailers/texnomart"


@pytest.fixture(scope="module")
async def gateway_to_loyalty(
    postgres: PostgresCluster, worker_id: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LoyaltyServiceStub]:
    url = postgres.ensure_database(f"loyalty_gateway_{worker_id}")
    LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": url})))
    logs = Path(tmp_path_factory.mktemp("loyalty-gateway-logs"))
    loyalty = start_process(
        "loyalty",
        "services.loyalty",
        {"LOYALTY_DATABASE_URL": url, "LOYALTY_GRPC_ADDRESS": ANY_PORT, "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0"},
        logs,
    )
    gateway: ServiceProcess | None = None
    try:
        await wait_until_serving(loyalty, LOYALTY_SERVICE)
        with refused_address() as no_customer_service:
            gateway = start_process(
                "gateway",
                "gateway",
                {
                    "GATEWAY_GRPC_ADDRESS": ANY_PORT,
                    "GATEWAY_CUSTOMER_TARGET": no_customer_service,
                    "GATEWAY_LOYALTY_TARGET": loyalty.address,
                    "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0",
                },
                logs,
            )
            await wait_until_serving(gateway, LOYALTY_SERVICE)
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                yield LoyaltyServiceStub(channel)
    finally:
        if gateway is not None:
            await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(loyalty.stop)


async def account_with(stub: LoyaltyServiceStub, points: int) -> str:
    account = await stub.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=f"customers/{uuid.uuid4()}", request_id=request_id()),
        metadata=COUNTER,
        timeout=5,
    )
    await stub.EarnPoints(
        loyalty_service_pb2.EarnPointsRequest(
            account=account.name, points=points, reason="bill payments", request_id=request_id()
        ),
        metadata=COUNTER,
        timeout=5,
    )
    return account.name


async def test_a_partner_counter_reserves_and_hands_over_a_handset_through_the_gateway(
    gateway_to_loyalty: LoyaltyServiceStub,
):
    stub = gateway_to_loyalty
    reward_id = f"handset-{uuid.uuid4().hex[:8]}"
    await stub.CreateReward(
        loyalty_service_pb2.CreateRewardRequest(
            reward=rewards_pb2.Reward(display_name="Handset", kind=rewards_pb2.REWARD_KIND_HANDSET, points_price=900),
            reward_id=reward_id,
            request_id=request_id(),
        ),
        metadata=COUNTER,
        timeout=5,
    )
    await stub.RestockReward(
        loyalty_service_pb2.RestockRewardRequest(
            reward=f"rewards/{reward_id}", partner=PARTNER, quantity=1, request_id=request_id()
        ),
        metadata=COUNTER,
        timeout=5,
    )
    account = await account_with(stub, 1000)
    held = await stub.ReserveReward(
        loyalty_service_pb2.ReserveRewardRequest(
            account=account,
            reward=f"rewards/{reward_id}",
            partner=PARTNER,
            hold_duration=Duration(seconds=600),
            request_id=request_id(),
        ),
        metadata=COUNTER,
        timeout=5,
    )
    captured = await stub.CaptureReservation(
        loyalty_service_pb2.CaptureReservationRequest(name=held.name, request_id=request_id()),
        metadata=COUNTER,
        timeout=5,
    )
    assert captured.state == rewards_pb2.RESERVATION_STATE_CAPTURED
    entries = await stub.ListEntries(
        loyalty_service_pb2.ListEntriesRequest(parent=account), metadata=COUNTER, timeout=5
    )
    assert [e.kind for e in entries.entries] == [
        loyalty_pb2.ENTRY_KIND_CAPTURE,
        loyalty_pb2.ENTRY_KIND_RESERVE,
        loyalty_pb2.ENTRY_KIND_EARN,
    ]
    assert {e.actor for e in entries.entries} == {"texnomart-chilonzor-counter-2"}
    balance = await stub.GetBalance(loyalty_service_pb2.GetBalanceRequest(name=f"{account}/balance"), timeout=5)
    assert (balance.available_points, balance.reserved_points) == (100, 0)


async def test_a_refusal_keeps_its_code_reason_and_domain_through_the_gateway(gateway_to_loyalty: LoyaltyServiceStub):
    account = await account_with(gateway_to_loyalty, 10)
    request = loyalty_service_pb2.RedeemPointsRequest(
        account=account, points=11, reason="voucher", request_id=request_id()
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gateway_to_loyalty.RedeemPoints(request, metadata=COUNTER, timeout=5)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = status_of(raised.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, info.metadata["available_points"]) == ("INSUFFICIENT_POINTS", "loyalty.crm", "10")


async def test_the_scheduled_work_is_not_exposed_through_the_gateway(gateway_to_loyalty: LoyaltyServiceStub):
    code, _ = await failure(
        gateway_to_loyalty.RunScheduledWork(loyalty_service_pb2.RunScheduledWorkRequest(), metadata=COUNTER, timeout=5)
    )
    assert code == grpc.StatusCode.UNIMPLEMENTED
