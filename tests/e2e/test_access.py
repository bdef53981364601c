"""One contract for employees, customers and retail partners, proven against the real processes: the
customer, loyalty, complaints and offers services and the gateway, called with signed tokens over TLS and with partner
certificates over mutual TLS.

The matrix is generated from the policy file and from every method the gateway serves: each caller
either reaches the backend or is PERMISSION_DENIED by the gateway, exactly as the policy says.
"""

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from google.type import date_pb2, money_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chassis.status import status_of
from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, complaint_service_pb2_grpc
from crm.customer.v1 import customer_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm.gateway.v1 import audit_pb2, audit_pb2_grpc
from crm.loyalty.v1 import loyalty_service_pb2, loyalty_service_pb2_grpc
from crm.offers.v1 import catalog_pb2, offers_service_pb2, offers_service_pb2_grpc, plan_change_pb2
from gateway.app import contract_messages, guarded_methods
from gateway.policy import MethodRule, Policy, RetailerCheck, load_policy
from gateway.routes import EXPOSED_SERVICES
from gateway.settings import DEFAULT_POLICY_FILE
from services.complaints.app import COMPLAINTS
from services.loyalty.app import LOYALTY
from services.offers.app import OFFERS
from tests.gateway_support import (
    customer_channel,
    employee_channel,
    gateway_environment,
    partner_channel,
    server_trust,
    token_channel,
)
from tests.processes import ANY_PORT, ServiceProcess, start_process, start_service, wait_until_serving
from tests.support import create_request, person, request_id, unique_mobile
from tools.credentials import CertificateFiles, LocalCredentials, issue_partner_certificate, new_certificate_authority
from tools.local_gateway import partner_tls
from tools.postgres import PostgresCluster

POLICY: Policy = load_policy(DEFAULT_POLICY_FILE, guarded_methods(), contract_messages())
ROLES = ("agent", "supervisor", "marketing", "back-office", "sre", "admin")
TEXNOMART, MEDIAPARK = "retailers/texnomart", "retailers/mediapark"
GATEWAY_DOMAIN = "gateway.crm"


@dataclass
class System:
    customer: ServiceProcess
    loyalty: ServiceProcess
    gateway: ServiceProcess
    strict_gateway: ServiceProcess
    """The same gateway with a customer's rate limited to a burst of two calls."""
    credentials: LocalCredentials


@pytest.fixture(scope="module")
async def system(
    postgres: PostgresCluster,
    worker_id: str,
    migrated_database_url,
    migrated_gateway_database_url,
    local_credentials: LocalCredentials,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[System]:
    logs = Path(tmp_path_factory.mktemp("access-logs"))
    customer = start_process(
        "customer",
        "services.customer",
        {
            "CUSTOMER_DATABASE_URL": migrated_database_url("customer_access"),
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
        },
        logs,
    )
    loyalty = start_service(
        LOYALTY,
        {
            "LOYALTY_DATABASE_URL": postgres.ensure_database(f"loyalty_access_{worker_id}"),
            "LOYALTY_GRPC_ADDRESS": ANY_PORT,
            "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0",
        },
        logs,
    )
    started = [customer, loyalty]
    try:
        await asyncio.gather(wait_until_serving(customer), wait_until_serving(loyalty))
        behind = {"CUSTOMER_TARGET": customer.address, "LOYALTY_TARGET": loyalty.address, "SHUTDOWN_DRAIN_SECONDS": "0"}
        complaints, offers = (
            start_service(
                definition,
                {
                    f"{prefix}_DATABASE_URL": postgres.ensure_database(f"{prefix.lower()}_access_{worker_id}"),
                    f"{prefix}_GRPC_ADDRESS": ANY_PORT,
                    **{f"{prefix}_{name}": value for name, value in behind.items()},
                },
                logs,
            )
            for definition, prefix in ((COMPLAINTS, "COMPLAINTS"), (OFFERS, "OFFERS"))
        )
        started.extend([complaints, offers])
        await asyncio.gather(wait_until_serving(complaints), wait_until_serving(offers))
        backends = {
            "CUSTOMER_TARGET": customer.address,
            "LOYALTY_TARGET": loyalty.address,
            "COMPLAINTS_TARGET": complaints.address,
            "OFFERS_TARGET": offers.address,
        }
        roomy = {"CUSTOMER_RATE_BURST": "1000", "EMPLOYEE_RATE_BURST": "2000", "RETAILER_RATE_BURST": "2000"}
        database = migrated_gateway_database_url("gateway_access")
        gateway = start_process(
            "gateway", "gateway", gateway_environment(local_credentials, database, **backends, **roomy), logs
        )
        started.append(gateway)
        strict = {"CUSTOMER_RATE_BURST": "2", "CUSTOMER_RATE_PER_SECOND": "0.01"}
        strict_gateway = start_process(
            "strict-gateway", "gateway", gateway_environment(local_credentials, database, **backends, **strict), logs
        )
        started.append(strict_gateway)
        await asyncio.gather(wait_until_serving(gateway), wait_until_serving(strict_gateway))
        yield System(customer, loyalty, gateway, strict_gateway, local_credentials)
    finally:
        for process in reversed(started):
            await asyncio.to_thread(process.stop)


def gateway_refusal(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """The ErrorInfo domain and reason of a failed call."""
    status = status_of(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.domain, info.reason
    return "", ""


async def onboarded_customer(system: System, retailer: str) -> customer_pb2.Customer:
    """A customer the partner `retailer` onboarded, created by an agent."""
    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        new = person(phone=unique_mobile("UZ"), country="UZ", region="Toshkent")
        new.retailer_id = retailer
        return await stub.CreateCustomer(create_request(new), timeout=10)


async def filed_complaint(system: System, customer: str) -> str:
    """A complaint about `customer`, filed by an agent; its name."""
    ticket = complaint_pb2.Complaint(
        customer=customer,
        type=complaint_pb2.COMPLAINT_TYPE_COMPLAINT,
        category=complaint_pb2.COMPLAINT_CATEGORY_BILLING_DISPUTE,
        description="Hisobimdan ikki marta pul yechildi",
        channel=common_pb2.CHANNEL_APP,
    )
    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        filed = await complaint_service_pb2_grpc.ComplaintServiceStub(channel).CreateComplaint(
            complaint_service_pb2.CreateComplaintRequest(complaint=ticket, request_id=request_id()), timeout=10
        )
    return filed.name


async def advised_line(system: System, customer: str) -> tuple[str, str, str]:
    """A line of `customer` on a catalog plan, a plan change of it an agent recorded with the
    customer's consent, and tariff advice given for it; their names."""
    region = f"Access {uuid.uuid4().hex[:8]}"
    async with employee_channel(system.gateway, system.credentials, ["marketing"]) as channel:
        catalog = offers_service_pb2_grpc.OfferServiceStub(channel)
        plans = []
        for price in (90_000, 40_000):
            plan = catalog_pb2.ProductOffering(
                kind=catalog_pb2.OFFERING_KIND_TARIFF_PLAN,
                display_name=f"Access {price}",
                market="UZ",
                price_model=catalog_pb2.PRICE_MODEL_MONTHLY,
                price=money_pb2.Money(currency_code="UZS", units=price),
                regions=[region],
            )
            created = await catalog.CreateProductOffering(
                offers_service_pb2.CreateProductOfferingRequest(
                    product_offering=plan,
                    product_offering_id=f"access-{uuid.uuid4().hex[:10]}",
                    request_id=request_id(),
                ),
                timeout=10,
            )
            plans.append(created.name)
    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        wanted = customer_pb2.Subscription(
            msisdn=unique_mobile("UZ"),
            tariff_plan_id=plans[0],
            activation_date=date_pb2.Date(year=2024, month=1, day=15),
            purpose=customer_pb2.SUBSCRIPTION_PURPOSE_PERSONAL,
            home_region=region,
        )
        line = await customer_service_pb2_grpc.CustomerServiceStub(channel).CreateSubscription(
            customer_service_pb2.CreateSubscriptionRequest(
                parent=customer, subscription=wanted, request_id=request_id()
            ),
            timeout=10,
        )
        offers = offers_service_pb2_grpc.OfferServiceStub(channel)
        advice = await offers.RecommendTariff(
            offers_service_pb2.RecommendTariffRequest(subscription=line.name), timeout=10
        )
        change = await offers.CreatePlanChange(
            offers_service_pb2.CreatePlanChangeRequest(
                plan_change=plan_change_pb2.PlanChange(
                    subscription=line.name,
                    to_plan=plans[1],
                    acceptance=plan_change_pb2.Acceptance(
                        acceptor_kind=plan_change_pb2.ACCEPTOR_KIND_AGENT_FOR_CUSTOMER,
                        channel=common_pb2.CHANNEL_RETAIL_SHOP,
                    ),
                ),
                request_id=request_id(),
            ),
            timeout=10,
        )
    return line.name, change.name, advice.name


# --- the matrix ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owned:
    """Resources of one customer that the matrix's requests name: a complaint, a line, a plan change
    of the line and a tariff recommendation for it (real ones for a customer's own matrix, names of
    nothing for employees, whose access is by role)."""

    complaint: str
    subscription: str
    plan_change: str
    recommendation: str

    @classmethod
    def of_nobody(cls, owner: str) -> "Owned":
        return cls(
            complaint=f"complaints/{uuid.uuid4()}",
            subscription=f"customers/{owner}/subscriptions/{uuid.uuid4()}",
            plan_change=f"planChanges/{uuid.uuid4()}",
            recommendation=f"tariffRecommendations/{uuid.uuid4()}",
        )


def resource_of(rule: MethodRule, field_name: str, owner: str, owned: Owned) -> str:
    """A resource of customer `owner` of the kind `rule`'s method takes in `field_name`."""
    if rule.method.startswith("/crm.loyalty.") and field_name != "customer":
        return f"accounts/{owner}"
    if rule.method.startswith("/crm.complaints.") and not field_name.endswith("customer"):
        return owned.complaint
    if rule.method.startswith("/crm.offers."):
        if field_name.endswith("subscription"):
            return owned.subscription
        if field_name == "name":
            return owned.recommendation if "TariffRecommendation" in rule.method else owned.plan_change
    return f"customers/{owner}"


def set_at(message: Message, path: str, value: str) -> None:
    """Sets the text field at `path` (`plan_change.subscription`) of `message`."""
    *parents, leaf = path.split(".")
    target = message
    for part in parents:
        target = getattr(target, part)
    setattr(target, leaf, value)


def request_for(rule: MethodRule, owner: str, tenant: str, owned: Owned) -> bytes:
    """A request to `rule`'s method about a resource of `owner` (a customer id; `owned` are theirs),
    shaped to pass the partner checks of `tenant`, so that only the policy decides whether it reaches
    the backend."""
    method = guarded_methods()[rule.method]
    message: Message = message_factory.GetMessageClass(method.input_type)()
    if rule.resource_field:
        set_at(message, rule.resource_field, resource_of(rule, rule.resource_field, owner, owned))
    if rule.retailer_check is RetailerCheck.PHONE_LOOKUP:
        message.phone_number = "+998901234567"  # type: ignore[attr-defined]
    if rule.partner_field:
        set_at(message, rule.partner_field, tenant)
    if rule.limit is not None:
        setattr(message, rule.limit.field, 1)
    if rule.customer_writable:
        message.update_mask.paths.extend(sorted(rule.customer_writable))  # type: ignore[attr-defined]
    if "request_id" in method.input_type.fields_by_name:
        message.request_id = request_id()  # type: ignore[attr-defined]
    return message.SerializeToString()


def allowed(rule: MethodRule, kind: str, role: str = "") -> bool:
    if kind == "employee":
        return role in rule.employee_roles
    return rule.customers if kind == "customer" else rule.retailers


async def outcome(channel: grpc.aio.Channel, method: str, request: bytes) -> str:
    """`reached` when the backend (or the gateway's own service) answered, else the gateway's refusal."""
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        await call(request, timeout=10)
    except grpc.aio.AioRpcError as error:
        domain, reason = gateway_refusal(error)
        if error.code() == grpc.StatusCode.PERMISSION_DENIED and domain == GATEWAY_DOMAIN:
            return f"denied:{reason}"
        assert error.code() != grpc.StatusCode.UNAUTHENTICATED, error.details()
    return "reached"


def test_the_matrix_covers_every_method_the_gateway_serves() -> None:
    assert set(POLICY.methods) == set(guarded_methods())
    served = {service.name for service in EXPOSED_SERVICES} | {"crm.gateway.v1.AuditService"}
    assert {method.split("/")[1] for method in POLICY.methods} == served


async def run_matrix(
    channel: grpc.aio.Channel, kind: str, owner: str, owned: Owned, tenant: str = "", role: str = ""
) -> list[str]:
    wrong = []
    for rule in POLICY.methods.values():
        seen = await outcome(channel, rule.method, request_for(rule, owner, tenant, owned))
        expected = "reached" if allowed(rule, kind, role) else "denied:METHOD_NOT_ALLOWED"
        if seen != expected:
            wrong.append(f"{rule.method}: expected {expected}, got {seen}")
    return wrong


@pytest.mark.parametrize("role", ROLES)
async def test_each_employee_role_reaches_exactly_the_methods_the_policy_gives_it(system: System, role: str) -> None:
    # A customer that does not exist: employees' object access is by role, the backend answers NOT_FOUND.
    async with employee_channel(system.gateway, system.credentials, [role], subject=f"matrix-{role}") as channel:
        nobody = str(uuid.uuid4())
        assert await run_matrix(channel, "employee", nobody, Owned.of_nobody(nobody), role=role) == []


async def test_a_customer_reaches_exactly_the_customer_methods_for_their_own_resources(system: System) -> None:
    customer = await onboarded_customer(system, "")
    complaint = await filed_complaint(system, customer.name)
    subscription, plan_change, recommendation = await advised_line(system, customer.name)
    owned = Owned(complaint, subscription, plan_change, recommendation)
    async with customer_channel(system.gateway, system.credentials, customer.name) as channel:
        assert await run_matrix(channel, "customer", customer.name.removeprefix("customers/"), owned) == []


async def test_a_partner_reaches_exactly_the_partner_methods_for_its_own_customers(system: System) -> None:
    onboarded = await onboarded_customer(system, TEXNOMART)
    owner = onboarded.name.removeprefix("customers/")
    async with partner_channel(system.gateway, system.credentials, "texnomart") as channel:
        assert await run_matrix(channel, "retailer", owner, Owned.of_nobody(owner), tenant=TEXNOMART) == []


# --- object level ------------------------------------------------------------------------------------


async def test_a_customer_cannot_read_another_customers_profile_lines_or_balance(system: System) -> None:
    alice, bob = await onboarded_customer(system, ""), await onboarded_customer(system, "")
    bob_id = bob.name.removeprefix("customers/")
    nobody = f"customers/{uuid.uuid4()}"
    async with customer_channel(system.gateway, system.credentials, alice.name) as channel:
        customers = customer_service_pb2_grpc.CustomerServiceStub(channel)
        loyalty = loyalty_service_pb2_grpc.LoyaltyServiceStub(channel)
        calls = {
            "profile": customers.GetCustomer(customer_service_pb2.GetCustomerRequest(name=bob.name), timeout=5),
            "lines": customers.ListSubscriptions(
                customer_service_pb2.ListSubscriptionsRequest(parent=bob.name), timeout=5
            ),
            "balance": loyalty.GetBalance(
                loyalty_service_pb2.GetBalanceRequest(name=f"accounts/{bob_id}/balance"), timeout=5
            ),
        }
        for what, call in calls.items():
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, what
            assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "NOT_YOUR_RESOURCE"), what
        # Someone else's customer that exists and one that does not get the same answer.
        answers = []
        for name in (bob.name, nobody):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await customers.GetCustomer(customer_service_pb2.GetCustomerRequest(name=name), timeout=5)
            answers.append((refused.value.code(), refused.value.details(), gateway_refusal(refused.value)))
        assert answers[0] == answers[1]
        own = await customers.GetCustomer(customer_service_pb2.GetCustomerRequest(name=alice.name), timeout=5)
        assert own.name == alice.name


async def test_a_partner_cannot_reach_another_partners_customer_until_they_present_themselves(system: System) -> None:
    theirs = await onboarded_customer(system, MEDIAPARK)
    async with partner_channel(system.gateway, system.credentials, "texnomart") as channel:
        customers = customer_service_pb2_grpc.CustomerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customers.GetCustomer(customer_service_pb2.GetCustomerRequest(name=theirs.name), timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "NOT_YOUR_RESOURCE")
        # The customer comes to the counter: found by phone, then reachable by this partner.
        phone = theirs.contact_media[0].phone_number
        found = await customers.SearchCustomers(
            customer_service_pb2.SearchCustomersRequest(phone_number=phone), timeout=5
        )
        assert [c.name for c in found.customers] == [theirs.name]
        seen = await customers.GetCustomer(customer_service_pb2.GetCustomerRequest(name=theirs.name), timeout=5)
        assert seen.name == theirs.name


async def test_a_partner_sees_exactly_the_masked_view_of_its_customer(system: System) -> None:
    ours = await onboarded_customer(system, TEXNOMART)
    async with partner_channel(system.gateway, system.credentials, "texnomart") as channel:
        seen = await customer_service_pb2_grpc.CustomerServiceStub(channel).GetCustomer(
            customer_service_pb2.GetCustomerRequest(name=ours.name), timeout=5
        )
    expected = customer_pb2.Customer()
    expected.CopyFrom(ours)
    expected.individual.ClearField("birth_date")
    expected.individual.ClearField("gender")
    expected.ClearField("creator")
    expected.ClearField("updater")
    phone = ours.contact_media[0].phone_number
    expected.contact_media[0].phone_number = phone[:6] + "*" * (len(phone) - 8) + phone[-2:]
    assert ours.individual.HasField("birth_date")
    assert seen == expected


async def test_a_partner_finds_customers_by_phone_only(system: System) -> None:
    async with partner_channel(system.gateway, system.credentials, "texnomart") as channel:
        customers = customer_service_pb2_grpc.CustomerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customers.SearchCustomers(customer_service_pb2.SearchCustomersRequest(region="Toshkent"), timeout=5)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "PHONE_LOOKUP_ONLY")


async def test_a_partner_onboards_customers_for_itself_only(system: System) -> None:
    new = person(phone=unique_mobile("UZ"), country="UZ", region="Toshkent")
    new.retailer_id = MEDIAPARK
    async with partner_channel(system.gateway, system.credentials, "texnomart") as channel:
        customers = customer_service_pb2_grpc.CustomerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customers.CreateCustomer(create_request(new), timeout=5)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        new.retailer_id = TEXNOMART
        created = await customers.CreateCustomer(create_request(new), timeout=5)
    assert created.retailer_id == TEXNOMART
    assert created.creator == ""  # hidden from partners; the record itself names the partner
    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        full = await customer_service_pb2_grpc.CustomerServiceStub(channel).GetCustomer(
            customer_service_pb2.GetCustomerRequest(name=created.name), timeout=5
        )
    assert full.creator == TEXNOMART


# --- property level ---------------------------------------------------------------------------------------


async def test_a_customer_may_change_their_contact_details_but_not_who_onboarded_them(system: System) -> None:
    own = await onboarded_customer(system, TEXNOMART)
    async with customer_channel(system.gateway, system.credentials, own.name) as channel:
        customers = customer_service_pb2_grpc.CustomerServiceStub(channel)
        change = customer_pb2.Customer(name=own.name, retailer_id=MEDIAPARK, etag=own.etag)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customers.UpdateCustomer(
                customer_service_pb2.UpdateCustomerRequest(customer=change, update_mask={"paths": ["retailer_id"]}),
                timeout=5,
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "FIELD_NOT_WRITABLE")
        language = customer_pb2.Customer(name=own.name, etag=own.etag)
        language.individual.preferred_language = "ru"
        updated = await customers.UpdateCustomer(
            customer_service_pb2.UpdateCustomerRequest(
                customer=language, update_mask={"paths": ["individual.preferred_language"]}
            ),
            timeout=5,
        )
    assert updated.individual.preferred_language == "ru"
    assert updated.retailer_id == TEXNOMART


async def test_only_a_supervisor_grants_goodwill_above_the_limit(system: System) -> None:
    account = f"accounts/{uuid.uuid4()}"
    big = loyalty_service_pb2.GrantGoodwillRequest(
        account=account, points=5000, reason="outage", request_id=request_id()
    )
    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await loyalty_service_pb2_grpc.LoyaltyServiceStub(channel).GrantGoodwill(big, timeout=5)
    assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "LIMIT_NEEDS_ROLE")
    async with employee_channel(system.gateway, system.credentials, ["supervisor"]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as reached:
            await loyalty_service_pb2_grpc.LoyaltyServiceStub(channel).GrantGoodwill(big, timeout=5)
    # The supervisor's grant reached the loyalty service, which knows no such account.
    assert reached.value.code() == grpc.StatusCode.NOT_FOUND
    assert gateway_refusal(reached.value)[0] == "loyalty.crm"


# --- who is calling -------------------------------------------------------------------------------------


async def test_a_call_without_credentials_is_unauthenticated_and_health_stays_open(system: System) -> None:
    async with grpc.aio.secure_channel(system.gateway.address, server_trust(system.credentials)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customer_service_pb2_grpc.CustomerServiceStub(channel).ListCustomers(
                customer_service_pb2.ListCustomersRequest(), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "CREDENTIALS_MISSING")
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_expired_token_is_unauthenticated_over_the_wire(system: System) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=3)
    token = system.credentials.sign({"sub": "agent-7", "roles": ["admin"]}, lifetime_seconds=60, now=past)
    async with token_channel(system.gateway, system.credentials, token) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customer_service_pb2_grpc.CustomerServiceStub(channel).ListCustomers(
                customer_service_pb2.ListCustomersRequest(), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "TOKEN_EXPIRED")


async def test_the_development_identity_is_off_unless_switched_on(system: System) -> None:
    async with grpc.aio.secure_channel(system.gateway.address, server_trust(system.credentials)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customer_service_pb2_grpc.CustomerServiceStub(channel).ListCustomers(
                customer_service_pb2.ListCustomersRequest(), metadata=(("x-crm-user", "alice"),), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_probe_port_serves_health_and_nothing_else(system: System) -> None:
    async with grpc.aio.insecure_channel(system.gateway.health_address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        token = system.credentials.employee_token("admin-1", ["admin"])
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await customer_service_pb2_grpc.CustomerServiceStub(channel).ListCustomers(
                customer_service_pb2.ListCustomersRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "TLS_REQUIRED")


async def partner_call_with(system: System, files: CertificateFiles) -> grpc.StatusCode:
    trust = partner_tls(system.credentials.authority.certificate, files)
    async with grpc.aio.secure_channel(system.gateway.partner_address, trust) as channel:
        try:
            await loyalty_service_pb2_grpc.LoyaltyServiceStub(channel).ListRewards(
                loyalty_service_pb2.ListRewardsRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def test_a_partner_certificate_of_the_operator_ca_is_accepted(system: System) -> None:
    assert await partner_call_with(system, system.credentials.partner("texnomart")) == grpc.StatusCode.OK


async def test_the_partner_port_refuses_a_call_without_a_certificate(system: System) -> None:
    async with grpc.aio.secure_channel(system.gateway.partner_address, server_trust(system.credentials)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await loyalty_service_pb2_grpc.LoyaltyServiceStub(channel).ListRewards(
                loyalty_service_pb2.ListRewardsRequest(), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake itself fails


async def test_the_partner_port_refuses_a_certificate_of_another_ca(system: System, tmp_path: Path) -> None:
    other_ca = CertificateFiles(tmp_path / "other-ca.pem", tmp_path / "other-ca.key")
    new_certificate_authority(other_ca, "Someone else's CA")
    forged = CertificateFiles(tmp_path / "forged.pem", tmp_path / "forged.key")
    issue_partner_certificate(other_ca, "texnomart", forged)
    assert await partner_call_with(system, forged) == grpc.StatusCode.UNAVAILABLE


async def test_the_partner_port_refuses_an_expired_certificate(system: System, tmp_path: Path) -> None:
    expired = CertificateFiles(tmp_path / "expired.pem", tmp_path / "expired.key")
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=400)
    issue_partner_certificate(
        system.credentials.authority,
        "texnomart",
        expired,
        not_valid_before=long_ago,
        not_valid_after=long_ago + datetime.timedelta(days=30),
    )
    assert await partner_call_with(system, expired) == grpc.StatusCode.UNAVAILABLE


async def test_identity_metadata_a_client_sends_never_reaches_a_backend(system: System) -> None:
    forged = (("x-crm-caller-subject", "mallory"), ("x-crm-caller-kind", "service"), ("x-crm-caller-roles", "admin"))
    async with employee_channel(system.gateway, system.credentials, ["agent"], subject="agent-farrukh") as channel:
        created = await customer_service_pb2_grpc.CustomerServiceStub(channel).CreateCustomer(
            create_request(person()), metadata=forged, timeout=5
        )
    assert created.creator == "agent-farrukh"


# --- audit and rate limits --------------------------------------------------------------------------------


async def audit_records(system: System, subject: str, expected: int) -> list[audit_pb2.AuditRecord]:
    """The audit trail's records of `subject`, newest first, once `expected` of them are written."""
    async with employee_channel(system.gateway, system.credentials, ["admin"], subject="auditor") as channel:
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        async with asyncio.timeout(10):
            while True:
                page = await audit.ListAuditRecords(
                    audit_pb2.ListAuditRecordsRequest(subject=subject, page_size=100), timeout=5
                )
                if len(page.audit_records) >= expected:
                    return list(page.audit_records)
                await asyncio.sleep(0.1)


async def test_each_mutation_and_each_denial_leaves_one_audit_record(system: System) -> None:
    subject = f"agent-{uuid.uuid4().hex[:8]}"
    async with employee_channel(system.gateway, system.credentials, ["agent"], subject=subject) as channel:
        customers = customer_service_pb2_grpc.CustomerServiceStub(channel)
        created = await customers.CreateCustomer(create_request(person()), timeout=5)
        await customers.GetCustomer(customer_service_pb2.GetCustomerRequest(name=created.name), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await customers.EraseCustomer(customer_service_pb2.EraseCustomerRequest(name=created.name), timeout=5)
    records = await audit_records(system, subject, 2)
    await asyncio.sleep(0.5)  # nothing more arrives: the read was not audited
    records = await audit_records(system, subject, 2)
    assert [(r.method, r.outcome, r.reason, r.resource) for r in records] == [
        ("/crm.customer.v1.CustomerService/EraseCustomer", "PERMISSION_DENIED", "METHOD_NOT_ALLOWED", created.name),
        ("/crm.customer.v1.CustomerService/CreateCustomer", "OK", "", ""),
    ]
    assert all(r.caller_kind == "employee" and list(r.roles) == ["agent"] and len(r.trace_id) == 32 for r in records)
    written = " ".join(str(r) for r in records)
    assert created.individual.family_name not in written
    assert created.contact_media[0].phone_number not in written


async def test_over_the_rate_limit_is_resource_exhausted_with_retry_info_and_reaches_no_backend(
    system: System,
) -> None:
    own = f"customers/{uuid.uuid4()}"
    account = loyalty_service_pb2.GetAccountRequest(name=f"accounts/{own.removeprefix('customers/')}")
    async with customer_channel(system.strict_gateway, system.credentials, own) as channel:
        loyalty = loyalty_service_pb2_grpc.LoyaltyServiceStub(channel)
        for _ in range(2):  # the burst reaches the loyalty service, which has no such account
            with pytest.raises(grpc.aio.AioRpcError) as reached:
                await loyalty.GetAccount(account, timeout=5)
            assert reached.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await loyalty.GetAccount(account, timeout=5)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "RATE_LIMITED")
    status = status_of(refused.value)
    assert status is not None
    delays = []
    for detail in status.details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            delays.append(retry.retry_delay.ToTimedelta())
    assert len(delays) == 1 and delays[0] > datetime.timedelta(seconds=1)
    # The loyalty service logged a call of this customer for each call of the burst, and none more.
    await asyncio.sleep(0.3)
    served = [line for line in system.loyalty.log().splitlines() if own in line and "GetAccount" in line]
    assert len(served) == 2


async def test_server_reflection_is_for_employees(system: System) -> None:
    async def list_services(channel: grpc.aio.Channel) -> list[str]:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        return [service.name async for answer in answers for service in answer.list_services_response.service]

    async with employee_channel(system.gateway, system.credentials, ["sre"]) as channel:
        assert "crm.loyalty.v1.LoyaltyService" in await list_services(channel)
    async with customer_channel(system.gateway, system.credentials, f"customers/{uuid.uuid4()}") as channel:
        # Refused before any request is read: the stream ends with the refusal, whatever is sent.
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=5)
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.PERMISSION_DENIED
        assert await call.details() == "server reflection is open to employees only"


async def test_complaints_are_filed_by_a_customers_token_and_a_partners_certificate_and_read_by_their_own(
    system: System,
) -> None:
    ours = await onboarded_customer(system, TEXNOMART)
    stranger = await onboarded_customer(system, "")
    ticket = complaint_pb2.Complaint(
        customer=ours.name,
        type=complaint_pb2.COMPLAINT_TYPE_COMPLAINT,
        category=complaint_pb2.COMPLAINT_CATEGORY_DEVICE,
        description="Telefon ekrani ikki kunda ishlamay qoldi",
        channel=common_pb2.CHANNEL_RETAIL_SHOP,
        retailer_id=TEXNOMART,
    )
    async with partner_channel(system.gateway, system.credentials, "texnomart") as channel:
        at_the_shop = await complaint_service_pb2_grpc.ComplaintServiceStub(channel).CreateComplaint(
            complaint_service_pb2.CreateComplaintRequest(complaint=ticket, request_id=request_id()), timeout=10
        )
    assert at_the_shop.retailer_id == TEXNOMART
    own_ticket = complaint_pb2.Complaint()
    own_ticket.CopyFrom(ticket)
    own_ticket.channel, own_ticket.retailer_id = common_pb2.CHANNEL_APP, ""
    async with customer_channel(system.gateway, system.credentials, ours.name) as channel:
        complaints = complaint_service_pb2_grpc.ComplaintServiceStub(channel)
        in_the_app = await complaints.CreateComplaint(
            complaint_service_pb2.CreateComplaintRequest(complaint=own_ticket, request_id=request_id()), timeout=10
        )
        listed = await complaints.ListComplaints(
            complaint_service_pb2.ListComplaintsRequest(customer=ours.name), timeout=5
        )
        assert {c.name for c in listed.complaints} == {at_the_shop.name, in_the_app.name}
    async with customer_channel(system.gateway, system.credentials, stranger.name) as channel:
        complaints = complaint_service_pb2_grpc.ComplaintServiceStub(channel)
        for call in (
            complaints.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=in_the_app.name), timeout=5),
            complaints.ListComplaints(complaint_service_pb2.ListComplaintsRequest(customer=ours.name), timeout=5),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert gateway_refusal(refused.value) == (GATEWAY_DOMAIN, "NOT_YOUR_RESOURCE")


async def test_a_customer_reads_only_the_notes_written_for_them(system: System) -> None:
    customer = await onboarded_customer(system, "")
    complaint = await filed_complaint(system, customer.name)
    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        complaints = complaint_service_pb2_grpc.ComplaintServiceStub(channel)
        for text, visibility in (
            ("Customer sounds upset; check the March invoice", complaint_pb2.NOTE_VISIBILITY_INTERNAL),
            ("We are checking your March invoice", complaint_pb2.NOTE_VISIBILITY_CUSTOMER_FACING),
        ):
            await complaints.CreateNote(
                complaint_service_pb2.CreateNoteRequest(
                    parent=complaint, note=complaint_pb2.Note(text=text, visibility=visibility), request_id=request_id()
                ),
                timeout=5,
            )
        everything = await complaints.ListNotes(complaint_service_pb2.ListNotesRequest(parent=complaint), timeout=5)
    async with customer_channel(system.gateway, system.credentials, customer.name) as channel:
        seen = await complaint_service_pb2_grpc.ComplaintServiceStub(channel).ListNotes(
            complaint_service_pb2.ListNotesRequest(parent=complaint), timeout=5
        )
    assert len(everything.notes) == 2
    assert [note.text for note in seen.notes] == ["We are checking your March invoice"]
