"""A retail partner's own client, in Node.js from the published protos, at the gateway's partner address:
the customer, loyalty and gateway processes run for real, and the partner's counter finds a customer by
phone (masked), reserves and hands over a handset at its shop, and is refused another partner's customer."""

import asyncio
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from chassis.settings import Environment
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1 import loyalty_service_pb2, rewards_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.gateway_support import employee_channel, gateway_environment
from tests.processes import ANY_PORT, ROOT, ServiceProcess, start_process, wait_until_serving
from tests.support import create_request, person, request_id, unique_mobile
from tools.credentials import LocalCredentials
from tools.gen_protos import GOOGLEAPIS, WELL_KNOWN
from tools.postgres import PostgresCluster

if TYPE_CHECKING:
    # mypy-protobuf's types of the stubs on an asyncio channel; they exist for type checkers only.
    from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceAsyncStub
    from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceAsyncStub

CUSTOMER_SERVICE = "crm.customer.v1.CustomerService"
LOYALTY_SERVICE = "crm.loyalty.v1.LoyaltyService"
PARTNER_COUNTER = ROOT / "tests" / "partner_client" / "partner_counter.js"
NODE_PACKAGES = ("@grpc/grpc-js", "@grpc/proto-loader")
# The employee who sets the scene: customers and accounts need agent, rewards marketing, points and stock back-office.
BACK_OFFICE_ROLES = ("agent", "marketing", "back-office")
TEXNOMART, MEDIAPARK = "retailers/texnomart", "retailers/mediapark"
POINTS_EARNED, HANDSET_PRICE = 1000, 900
CALL_SECONDS = 5.0
CLIENT_SECONDS = 60.0


@dataclass(frozen=True)
class PartnerSystem:
    """The gateway in front of the real customer and loyalty services, and an employee's stubs."""

    gateway: ServiceProcess
    customers: "CustomerServiceAsyncStub"
    loyalty: "LoyaltyServiceAsyncStub"


@dataclass(frozen=True)
class CounterScene:
    """What the partner's counter is about to meet."""

    customer: str
    """A customer texnomart onboarded."""
    phone_number: str
    """That customer's phone number."""
    account: str
    """That customer's loyalty account, holding `POINTS_EARNED`."""
    handset: str
    """A handset reward priced `HANDSET_PRICE`, one piece in stock at texnomart."""
    other_partners_customer: str
    """A customer mediapark onboarded."""


@pytest.fixture(scope="module")
async def partner_system(
    postgres: PostgresCluster,
    worker_id: str,
    migrated_database_url: Callable[[str], str],
    migrated_gateway_database_url: Callable[[str], str],
    local_credentials: LocalCredentials,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[PartnerSystem]:
    loyalty_url = postgres.ensure_database(f"loyalty_partner_client_{worker_id}")
    LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": loyalty_url})))
    logs = Path(tmp_path_factory.mktemp("partner-client-logs"))
    customer = start_process(
        "customer",
        "services.customer",
        {
            "CUSTOMER_DATABASE_URL": migrated_database_url("customer_partner_client"),
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
        },
        logs,
    )
    loyalty = start_process(
        "loyalty",
        "services.loyalty",
        {"LOYALTY_DATABASE_URL": loyalty_url, "LOYALTY_GRPC_ADDRESS": ANY_PORT, "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0"},
        logs,
    )
    gateway: ServiceProcess | None = None
    try:
        await wait_until_serving(customer, CUSTOMER_SERVICE)
        await wait_until_serving(loyalty, LOYALTY_SERVICE)
        gateway = start_process(
            "gateway",
            "gateway",
            gateway_environment(
                local_credentials,
                migrated_gateway_database_url("gateway_partner_client"),
                CUSTOMER_TARGET=customer.address,
                LOYALTY_TARGET=loyalty.address,
            ),
            logs,
        )
        await wait_until_serving(gateway, CUSTOMER_SERVICE)
        await wait_until_serving(gateway, LOYALTY_SERVICE)
        async with employee_channel(
            gateway, local_credentials, BACK_OFFICE_ROLES, subject="back-office-nodira"
        ) as channel:
            yield PartnerSystem(gateway, CustomerServiceStub(channel), LoyaltyServiceStub(channel))
    finally:
        if gateway is not None:
            await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(loyalty.stop)
        await asyncio.to_thread(customer.stop)


@pytest.fixture(scope="module")
async def counter_scene(partner_system: PartnerSystem) -> CounterScene:
    customers, loyalty = partner_system.customers, partner_system.loyalty
    phone_number = unique_mobile("UZ")
    onboarded = await customers.CreateCustomer(
        create_request(person(phone=phone_number, retailer_id=TEXNOMART)), timeout=CALL_SECONDS
    )
    elsewhere = await customers.CreateCustomer(create_request(person(retailer_id=MEDIAPARK)), timeout=CALL_SECONDS)
    account = await loyalty.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=onboarded.name, request_id=request_id()), timeout=CALL_SECONDS
    )
    await loyalty.EarnPoints(
        loyalty_service_pb2.EarnPointsRequest(
            account=account.name, points=POINTS_EARNED, reason="bill payments", request_id=request_id()
        ),
        timeout=CALL_SECONDS,
    )
    reward_id = f"handset-{uuid.uuid4().hex[:8]}"
    handset = await loyalty.CreateReward(
        loyalty_service_pb2.CreateRewardRequest(
            reward=rewards_pb2.Reward(
                display_name="Handset", kind=rewards_pb2.REWARD_KIND_HANDSET, points_price=HANDSET_PRICE
            ),
            reward_id=reward_id,
            request_id=request_id(),
        ),
        timeout=CALL_SECONDS,
    )
    await loyalty.RestockReward(
        loyalty_service_pb2.RestockRewardRequest(
            reward=handset.name, partner=TEXNOMART, quantity=1, request_id=request_id()
        ),
        timeout=CALL_SECONDS,
    )
    return CounterScene(onboarded.name, phone_number, account.name, handset.name, elsewhere.name)


def required_node() -> str:
    """The node executable, with the client's packages installed; fails the test (never skips) without."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the partner client runs on Node.js; install Node.js 18 or later")
    missing = [package for package in NODE_PACKAGES if not (ROOT / "node_modules" / package).is_dir()]
    if missing:
        pytest.fail(f"node_modules lacks {', '.join(missing)}: run `npm install` (`make test` does)")
    return node


async def run_partner_counter(
    node: str, gateway: ServiceProcess, credentials: LocalCredentials, retailer: str, scene: CounterScene
) -> dict[str, object]:
    """Runs the partner's counter as `retailer` and returns the JSON line it printed; fails the test
    when it exits non-zero or overruns its time."""
    certificate = credentials.partner(retailer)
    environment = {
        **os.environ,
        "GATEWAY_PARTNER_ADDRESS": gateway.partner_address,
        "PARTNER_CA_FILE": str(credentials.authority.certificate),
        "PARTNER_CERT_FILE": str(certificate.certificate),
        "PARTNER_KEY_FILE": str(certificate.key),
        "PROTO_INCLUDE_DIRS": os.pathsep.join((str(GOOGLEAPIS), str(WELL_KNOWN))),
        "CUSTOMER_PHONE_NUMBER": scene.phone_number,
        "HANDSET_REWARD": scene.handset,
        "OTHER_PARTNERS_CUSTOMER": scene.other_partners_customer,
        "CALL_TIMEOUT_SECONDS": str(CALL_SECONDS),
    }
    client = await asyncio.create_subprocess_exec(
        node,
        str(PARTNER_COUNTER),
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(client.communicate(), CLIENT_SECONDS)
    except TimeoutError:
        client.kill()
        await client.wait()
        pytest.fail(f"the partner counter did not finish within {CLIENT_SECONDS}s")
    printed, complaints = out.decode(errors="replace"), err.decode(errors="replace")
    assert client.returncode == 0, (
        f"the partner counter exited {client.returncode}\nstdout: {printed}\nstderr: {complaints}\n"
        f"the gateway's last log lines:\n{_tail(gateway.log())}"
    )
    lines = [line for line in printed.splitlines() if line.strip()]
    assert lines, f"the partner counter printed nothing; stderr: {complaints}"
    report: dict[str, object] = json.loads(lines[-1])
    return report


def _tail(log: str, lines: int = 40) -> str:
    return "\n".join(log.splitlines()[-lines:])


def masked(number: str) -> str:
    """How a partner sees a phone number: the country and network code, the last two digits."""
    return number[:6] + "*" * (len(number) - 8) + number[-2:]


async def test_a_partner_counter_written_in_nodejs_finds_by_phone_hands_over_a_handset_and_is_refused_others(
    partner_system: PartnerSystem, counter_scene: CounterScene, local_credentials: LocalCredentials
) -> None:
    node = required_node()

    report = await run_partner_counter(node, partner_system.gateway, local_credentials, "texnomart", counter_scene)

    assert report["partner"] == TEXNOMART
    assert report["customer"] == counter_scene.customer
    assert report["masked_phone"] == masked(counter_scene.phone_number)
    assert report["phone_numbers_shown"] == [masked(counter_scene.phone_number)]
    assert report["birth_date_shown"] is False
    assert report["reservation_states"] == ["RESERVATION_STATE_HELD", "RESERVATION_STATE_CAPTURED"]
    assert report["reserved_points"] == HANDSET_PRICE
    assert report["denial"] == {
        "code": grpc.StatusCode.PERMISSION_DENIED.value[0],
        "details": "name names a resource this caller may not reach",
        "reason": "NOT_YOUR_RESOURCE",
        "domain": "gateway.crm",
        "metadata": {"field": "name"},
    }
    balance = await partner_system.loyalty.GetBalance(
        loyalty_service_pb2.GetBalanceRequest(name=f"{counter_scene.account}/balance"), timeout=CALL_SECONDS
    )
    assert (balance.available_points, balance.reserved_points) == (POINTS_EARNED - HANDSET_PRICE, 0)
