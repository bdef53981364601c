"""The loyalty and customer services and the gateway as separate processes: a partner shop's counter,
calling with its client certificate, finds a customer by phone and reserves and hands over a handset
through the gateway; employees call with tokens of the roles the policy asks; refusals keep their
reasons, internal work stays inside."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2

from chassis.settings import Environment
from chassis.status import status_of
from crm.customer.v1 import customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, rewards_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.gateway_support import employee_channel, gateway_environment, partner_channel
from tests.processes import ANY_PORT, ServiceProcess, start_process, wait_until_serving
from tests.support import CUSTOMER_SERVICE, create_request, failure, person, request_id, unique_mobile
from tools.credentials import LocalCredentials
from tools.postgres import PostgresCluster

LOYALTY_SERVICE = "crm.loyalty.v1.LoyaltyService"
RETAILER = "texnomart"
PARTNER = f"retailers/{RETAILER}"
"""The partner its certificate (`crm://retailers/texnomart`) makes the counter's caller."""
AGENT = "agent-dilnoza"
POSTING_JOB = "bill-payment-points"
"""The back-office job that posts the points customers earn by paying their bills."""
MARKETER = "marketing-aziza"
ADMINISTRATOR = "admin-rustam"


@dataclass
class LoyaltyThroughGateway:
    """Clients of the gateway, one per caller: employees with their tokens, the partner's counter."""

    agent: LoyaltyServiceStub
    agent_customers: CustomerServiceStub
    posting_job: LoyaltyServiceStub
    """Back office: posts points."""
    marketer: LoyaltyServiceStub
    """Marketing: defines rewards and stocks them."""
    administrator: LoyaltyServiceStub
    counter: LoyaltyServiceStub
    """Texnomart's point of sale, over mutual TLS at the partner address."""
    counter_customers: CustomerServiceStub


@pytest.fixture(scope="module")
async def gateway_to_loyalty(
    postgres: PostgresCluster,
    worker_id: str,
    migrated_database_url: Callable[[str], str],
    migrated_gateway_database_url: Callable[[str], str],
    local_credentials: LocalCredentials,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LoyaltyThroughGateway]:
    url = postgres.ensure_database(f"loyalty_gateway_{worker_id}")
    LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": url})))
    logs = Path(tmp_path_factory.mktemp("loyalty-gateway-logs"))
    loyalty = start_process(
        "loyalty",
        "services.loyalty",
        {"LOYALTY_DATABASE_URL": url, "LOYALTY_GRPC_ADDRESS": ANY_PORT, "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0"},
        logs,
    )
    # The gateway asks the customer service whose customer a partner calls about.
    customer = start_process(
        "customer",
        "services.customer",
        {
            "CUSTOMER_DATABASE_URL": migrated_database_url("customer_loyalty_gateway"),
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
        },
        logs,
    )
    gateway: ServiceProcess | None = None
    try:
        await asyncio.gather(
            wait_until_serving(loyalty, LOYALTY_SERVICE), wait_until_serving(customer, CUSTOMER_SERVICE)
        )
        gateway = serving = start_process(
            "gateway",
            "gateway",
            gateway_environment(
                local_credentials,
                migrated_gateway_database_url("gateway_loyalty"),
                CUSTOMER_TARGET=customer.address,
                LOYALTY_TARGET=loyalty.address,
            ),
            logs,
        )
        await wait_until_serving(serving, LOYALTY_SERVICE)
        async with AsyncExitStack() as opened:

            async def as_employee(subject: str, *roles: str) -> grpc.aio.Channel:
                return await opened.enter_async_context(employee_channel(serving, local_credentials, roles, subject))

            agent = await as_employee(AGENT, "agent")
            counter = await opened.enter_async_context(partner_channel(serving, local_credentials, RETAILER))
            yield LoyaltyThroughGateway(
                agent=LoyaltyServiceStub(agent),
                agent_customers=CustomerServiceStub(agent),
                posting_job=LoyaltyServiceStub(await as_employee(POSTING_JOB, "back-office")),
                marketer=LoyaltyServiceStub(await as_employee(MARKETER, "marketing")),
                administrator=LoyaltyServiceStub(await as_employee(ADMINISTRATOR, "admin")),
                counter=LoyaltyServiceStub(counter),
                counter_customers=CustomerServiceStub(counter),
            )
    finally:
        if gateway is not None:
            await asyncio.to_thread(gateway.stop)
        await asyncio.gather(asyncio.to_thread(loyalty.stop), asyncio.to_thread(customer.stop))


async def account_with(system: LoyaltyThroughGateway, customer: str, points: int) -> str:
    """The customer's account, opened by an agent and credited by the back office."""
    account = await system.agent.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=customer, request_id=request_id()), timeout=5
    )
    await system.posting_job.EarnPoints(
        loyalty_service_pb2.EarnPointsRequest(
            account=account.name, points=points, reason="bill payments", request_id=request_id()
        ),
        timeout=5,
    )
    return account.name


async def test_a_partner_counter_reserves_and_hands_over_a_handset_through_the_gateway(
    gateway_to_loyalty: LoyaltyThroughGateway,
):
    system = gateway_to_loyalty
    reward_id = f"handset-{uuid.uuid4().hex[:8]}"
    await system.marketer.CreateReward(
        loyalty_service_pb2.CreateRewardRequest(
            reward=rewards_pb2.Reward(display_name="Handset", kind=rewards_pb2.REWARD_KIND_HANDSET, points_price=900),
            reward_id=reward_id,
            request_id=request_id(),
        ),
        timeout=5,
    )
    await system.posting_job.RestockReward(
        loyalty_service_pb2.RestockRewardRequest(
            reward=f"rewards/{reward_id}", partner=PARTNER, quantity=1, request_id=request_id()
        ),
        timeout=5,
    )
    phone = unique_mobile()
    customer = await system.agent_customers.CreateCustomer(create_request(person(phone=phone)), timeout=5)
    account = await account_with(system, customer.name, 1000)

    # At the counter the customer gives their number: found by it, they count as present there.
    found = await system.counter_customers.SearchCustomers(
        customer_service_pb2.SearchCustomersRequest(phone_number=phone), timeout=5
    )
    assert [c.name for c in found.customers] == [customer.name]
    held = await system.counter.ReserveReward(
        loyalty_service_pb2.ReserveRewardRequest(
            account=account,
            reward=f"rewards/{reward_id}",
            partner=PARTNER,
            hold_duration=Duration(seconds=600),
            request_id=request_id(),
        ),
        timeout=5,
    )
    captured = await system.counter.CaptureReservation(
        loyalty_service_pb2.CaptureReservationRequest(name=held.name, request_id=request_id()), timeout=5
    )
    assert captured.state == rewards_pb2.RESERVATION_STATE_CAPTURED
    entries = await system.agent.ListEntries(loyalty_service_pb2.ListEntriesRequest(parent=account), timeout=5)
    assert [(e.kind, e.actor) for e in entries.entries] == [
        (loyalty_pb2.ENTRY_KIND_CAPTURE, PARTNER),
        (loyalty_pb2.ENTRY_KIND_RESERVE, PARTNER),
        (loyalty_pb2.ENTRY_KIND_EARN, POSTING_JOB),
    ]
    balance = await system.counter.GetBalance(
        loyalty_service_pb2.GetBalanceRequest(name=f"{account}/balance"), timeout=5
    )
    assert (balance.available_points, balance.reserved_points) == (100, 0)


async def test_a_refusal_keeps_its_code_reason_and_domain_through_the_gateway(
    gateway_to_loyalty: LoyaltyThroughGateway,
):
    account = await account_with(gateway_to_loyalty, f"customers/{uuid.uuid4()}", 10)
    request = loyalty_service_pb2.RedeemPointsRequest(
        account=account, points=11, reason="voucher", request_id=request_id()
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gateway_to_loyalty.agent.RedeemPoints(request, timeout=5)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    status = status_of(raised.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, info.metadata["available_points"]) == ("INSUFFICIENT_POINTS", "loyalty.crm", "10")


async def test_the_scheduled_work_is_not_exposed_through_the_gateway(gateway_to_loyalty: LoyaltyThroughGateway):
    # Not even to an administrator: the gateway has no such method.
    code, _ = await failure(
        gateway_to_loyalty.administrator.RunScheduledWork(loyalty_service_pb2.RunScheduledWorkRequest(), timeout=5)
    )
    assert code == grpc.StatusCode.UNIMPLEMENTED
