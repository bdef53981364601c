"""Tariff advice and plan changes through the gateway, with the customer service, the offers service
and the gateway as separate processes, called with signed tokens over TLS: a customer's token reaches
its own advice, plan changes and next-best actions only, and someone else's are refused alike whether
they exist or not; no plan change without the customer's consent; and an accepted plan change puts
the line on its new plan in the customer service exactly once although the offers service is
SIGKILLed between the acceptance and the update."""

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.database import async_url
from chassis.settings import Environment
from chassis.status import status_of
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2, events_pb2, usage_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from crm.offers.v1 import events_pb2 as offers_events_pb2
from crm.offers.v1 import next_best_action_service_pb2, offers_service_pb2, plan_change_pb2, recommendation_pb2
from crm.offers.v1.next_best_action_service_pb2_grpc import NextBestActionServiceStub
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from services.offers.app import OFFERS
from services.offers.settings import OffersSettings
from tests.gateway_support import customer_channel, employee_channel, gateway_environment
from tests.integration.offers.catalog_support import create, fresh_region, tariff
from tests.integration.offers.line_support import Day, last_month, open_line
from tests.processes import ANY_PORT, ServiceProcess, refused_address, start_process, wait_until_serving
from tests.support import CUSTOMER_SERVICE, create_request, person, proto_day, request_id
from tools.credentials import LocalCredentials
from tools.postgres import PostgresCluster

OFFERS_SERVICE = "crm.offers.v1.OfferService"
GATEWAY_DOMAIN = "gateway.crm"
OFFERS_DOMAIN = "offers.crm"
NEVER_SECONDS = "86400"
"""A sender interval no round reaches within the test: the first offers process sends nothing."""
SOON_SECONDS = "0.2"
SENDER_ROUNDS_SECONDS = 1.0
"""Long enough for several rounds of a sender running every `SOON_SECONDS`."""
SUBSCRIPTION_CHANGED = events_pb2.SubscriptionChanged.DESCRIPTOR.full_name
PLAN_CHANGE_UPDATED = offers_events_pb2.PlanChangeUpdated.DESCRIPTOR.full_name
SMALL_USE = [Day(last_month(day), on_net_minutes=10, off_net_minutes=3, data_mb=150) for day in range(1, 11)]
"""Ten days last month: 100 on-net and 30 off-net minutes and 1.5 GB in all, which Lite covers."""
CUSTOMER_SELF = plan_change_pb2.Acceptance(
    acceptor_kind=plan_change_pb2.ACCEPTOR_KIND_CUSTOMER, channel=common_pb2.CHANNEL_APP
)
BY_AGENT = plan_change_pb2.Acceptance(
    acceptor_kind=plan_change_pb2.ACCEPTOR_KIND_AGENT_FOR_CUSTOMER, channel=common_pb2.CHANNEL_RETAIL_SHOP
)


@dataclass(frozen=True)
class Refusal:
    """How a call failed, as its caller sees it."""

    code: grpc.StatusCode
    details: str
    domain: str
    reason: str


@dataclass(frozen=True)
class Plans:
    """Two plans sold in a region of their own: the dear old one lines start on, and a cheap one."""

    region: str
    classic: str
    lite: str


@dataclass(frozen=True)
class OffersSystem:
    """The offers service behind the gateway, the customer service beside it, and who calls."""

    customer: ServiceProcess
    offers: ServiceProcess
    gateway: ServiceProcess
    credentials: LocalCredentials


# --- processes -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("offers-gateway-logs"))


@pytest.fixture(scope="module")
def customer_service_database(migrated_database_url: Callable[[str], str]) -> str:
    return migrated_database_url("customer_offers_gateway")


@pytest.fixture(scope="module")
async def customer_service(customer_service_database: str, logs: Path) -> AsyncIterator[ServiceProcess]:
    customer = start_process(
        "customer",
        "services.customer",
        {
            "CUSTOMER_DATABASE_URL": customer_service_database,
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
        },
        logs,
    )
    try:
        await wait_until_serving(customer, CUSTOMER_SERVICE)
        yield customer
    finally:
        await asyncio.to_thread(customer.stop)


@pytest.fixture(scope="module")
async def customer_records(customer_service_database: str) -> AsyncIterator[AsyncEngine]:
    """The customer service's database, read for the events its lines' changes announced."""
    engine = create_async_engine(async_url(customer_service_database))
    yield engine
    await engine.dispose()


def migrated_offers_database(postgres: PostgresCluster, name: str) -> str:
    """An empty offers database of the schema the service runs on."""
    postgres.drop_database(name)
    url = postgres.ensure_database(name)
    OFFERS.migrate(OffersSettings.from_environment(Environment({"OFFERS_DATABASE_URL": url})))
    return url


def start_offers(
    name: str,
    database_url: str,
    customer: ServiceProcess,
    logs: Path,
    *,
    sender_interval: str,
    address: str = ANY_PORT,
) -> ServiceProcess:
    """The offers service as a process, sending accepted plan changes every `sender_interval` seconds."""
    return start_process(
        name,
        "services.offers",
        {
            "OFFERS_DATABASE_URL": database_url,
            "OFFERS_GRPC_ADDRESS": address,
            "OFFERS_SHUTDOWN_DRAIN_SECONDS": "0",
            "OFFERS_CUSTOMER_TARGET": customer.address,
            "OFFERS_PLAN_CHANGE_INTERVAL_SECONDS": sender_interval,
        },
        logs,
    )


def start_gateway(
    name: str,
    credentials: LocalCredentials,
    database_url: str,
    customer: ServiceProcess,
    offers: ServiceProcess,
    nowhere: str,
    logs: Path,
) -> ServiceProcess:
    """The gateway in front of the customer and offers services; no loyalty or complaints service
    runs here (`nowhere` refuses connections)."""
    environment = gateway_environment(
        credentials,
        database_url,
        CUSTOMER_TARGET=customer.address,
        OFFERS_TARGET=offers.address,
        LOYALTY_TARGET=nowhere,
        COMPLAINTS_TARGET=nowhere,
    )
    return start_process(name, "gateway", environment, logs)


@pytest.fixture(scope="module")
async def system(
    postgres: PostgresCluster,
    worker_id: str,
    migrated_gateway_database_url: Callable[[str], str],
    local_credentials: LocalCredentials,
    customer_service: ServiceProcess,
    logs: Path,
) -> AsyncIterator[OffersSystem]:
    """An offers service whose sender runs every few tenths of a second, behind a gateway."""
    offers_url = migrated_offers_database(postgres, f"offers_gateway_{worker_id}")
    offers = start_offers("offers", offers_url, customer_service, logs, sender_interval=SOON_SECONDS)
    started = [offers]
    try:
        await wait_until_serving(offers, OFFERS_SERVICE)
        with refused_address() as nowhere:
            database = migrated_gateway_database_url("gateway_offers")
            gateway = start_gateway("gateway", local_credentials, database, customer_service, offers, nowhere, logs)
            started.append(gateway)
            await wait_until_serving(gateway, OFFERS_SERVICE)
            yield OffersSystem(customer_service, offers, gateway, local_credentials)
    finally:
        for process in reversed(started):
            await asyncio.to_thread(process.stop)


# --- callers and what they set up ------------------------------------------------------------------


async def refusal(call: Awaitable[object]) -> Refusal:
    """Awaits a call expected to fail; its code, message and ErrorInfo domain and reason."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        status = status_of(error)
        for detail in status.details if status is not None else ():
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return Refusal(error.code(), error.details() or "", info.domain, info.reason)
        return Refusal(error.code(), error.details() or "", "", "")
    raise AssertionError("the call succeeded but was expected to fail")


def owner_of(subscription: str) -> str:
    """The customer `customers/{c}` a line `customers/{c}/subscriptions/{s}` belongs to."""
    return subscription.partition("/subscriptions/")[0]


async def sold_plans(gateway: ServiceProcess, credentials: LocalCredentials) -> Plans:
    """Classic at 120 000 UZS and Lite at 30 000 UZS a month, created by marketing through the gateway."""
    region = fresh_region()
    async with employee_channel(gateway, credentials, ["marketing"], subject="marketing-aziza") as channel:
        catalog = OfferServiceStub(channel)
        classic = await create(catalog, tariff("Classic", price=120_000, data_mb=20_000, regions=(region,)))
        lite = await create(catalog, tariff("Lite", price=30_000, on_net=200, data_mb=2_000, regions=(region,)))
    return Plans(region, classic, lite)


async def new_customer(system: OffersSystem) -> str:
    """A customer an agent created through the gateway; their name."""
    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        created = await CustomerServiceStub(channel).CreateCustomer(create_request(person()), timeout=5)
    return created.name


async def opened_line(
    gateway: ServiceProcess, credentials: LocalCredentials, plan: str, region: str
) -> tuple[str, str]:
    """A new customer's line on `plan` at home in `region`, opened by an agent through the gateway;
    its name and number."""
    async with employee_channel(gateway, credentials, ["agent"]) as channel:
        return await open_line(CustomerServiceStub(channel), plan=plan, home_region=region)


async def used(customer: ServiceProcess, subscription: str, msisdn: str, days: list[Day]) -> None:
    """Sends the days' records to the customer service as network mediation does (inside the cluster)
    and waits until its publisher folded them into the line's usage profile."""
    records = [
        usage_pb2.UsageRecord(
            record_id=f"r-{uuid.uuid4()}",
            msisdn=msisdn,
            usage_date=proto_day(day.day),
            on_net_minutes=day.on_net_minutes,
            off_net_minutes=day.off_net_minutes,
            sms_count=day.sms,
            data_mb=day.data_mb,
            area=day.area,
            radio_technology=day.technology,
        )
        for day in days
    ]

    async def batches() -> AsyncIterator[usage_pb2.IngestUsageRequest]:
        yield usage_pb2.IngestUsageRequest(records=records)

    async with grpc.aio.insecure_channel(customer.address) as channel:
        usage = UsageServiceStub(channel)
        answer = await usage.IngestUsage(batches(), timeout=30)
        assert answer.accepted == len(records), answer
        async with asyncio.timeout(30):
            while True:
                profile = await usage.GetUsageProfile(
                    usage_pb2.GetUsageProfileRequest(name=f"{subscription}/usageProfile"), timeout=5
                )
                if sum(month.record_count for month in profile.months) == len(records):
                    return
                await asyncio.sleep(0.1)


async def line_in_customer_service(customer: ServiceProcess, subscription: str) -> customer_pb2.Subscription:
    """The line as the customer service holds it, asked directly."""
    async with grpc.aio.insecure_channel(customer.address) as channel:
        return await CustomerServiceStub(channel).GetSubscription(
            customer_service_pb2.GetSubscriptionRequest(name=subscription), timeout=5
        )


async def tariffs_announced(engine: AsyncEngine, subscription: str) -> list[str]:
    """The plan of each version of the line the customer service wrote, in order: one entry per
    creation or update of the line."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT payload FROM outbox WHERE aggregateid = :customer AND type = :type ORDER BY seq"),
            {"customer": owner_of(subscription), "type": SUBSCRIPTION_CHANGED},
        )
        changes = [events_pb2.SubscriptionChanged.FromString(row.payload).subscription for row in rows]
    return [line.tariff_plan_id for line in changes if line.name == subscription]


async def plan_change_row(engine: AsyncEngine, name: str) -> tuple[str, int]:
    """(state, attempts to send it) of a plan change in the offers database."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT state, attempts FROM plan_changes WHERE id = :id"),
                {"id": uuid.UUID(name.removeprefix("planChanges/"))},
            )
        ).one()
    return str(row.state), int(row.attempts)


async def plan_change_states_announced(
    engine: AsyncEngine, change: plan_change_pb2.PlanChange
) -> list[plan_change_pb2.PlanChangeState.ValueType]:
    """Each state of the plan change the offers service announced, in order."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT payload FROM outbox WHERE aggregateid = :customer AND type = :type ORDER BY seq"),
            {"customer": owner_of(change.subscription), "type": PLAN_CHANGE_UPDATED},
        )
        updates = [offers_events_pb2.PlanChangeUpdated.FromString(row.payload).plan_change for row in rows]
    return [update.state for update in updates if update.name == change.name]


def change_request(
    subscription: str, to_plan: str, acceptance: plan_change_pb2.Acceptance | None
) -> offers_service_pb2.CreatePlanChangeRequest:
    change = plan_change_pb2.PlanChange(subscription=subscription, to_plan=to_plan)
    if acceptance is not None:
        change.acceptance.CopyFrom(acceptance)
    return offers_service_pb2.CreatePlanChangeRequest(plan_change=change, request_id=request_id())


def actions_request(customer: str) -> next_best_action_service_pb2.GetNextBestActionsRequest:
    return next_best_action_service_pb2.GetNextBestActionsRequest(customer=customer, channel=common_pb2.CHANNEL_APP)


# --- a customer's own advice -----------------------------------------------------------------------


async def test_a_customer_is_advised_on_their_own_line_with_the_saving_stated(system: OffersSystem) -> None:
    plans = await sold_plans(system.gateway, system.credentials)
    subscription, msisdn = await opened_line(system.gateway, system.credentials, plans.classic, plans.region)
    await used(system.customer, subscription, msisdn, SMALL_USE)

    async with customer_channel(system.gateway, system.credentials, owner_of(subscription)) as channel:
        offers = OfferServiceStub(channel)
        advice = await offers.RecommendTariff(
            offers_service_pb2.RecommendTariffRequest(subscription=subscription), timeout=10
        )
        kept = await offers.GetTariffRecommendation(
            offers_service_pb2.GetTariffRecommendationRequest(name=advice.name), timeout=5
        )

    assert advice.outcome == recommendation_pb2.RECOMMENDATION_OUTCOME_SWITCH
    assert (advice.subscription, advice.current_plan, advice.recommended_plan) == (
        subscription,
        plans.classic,
        plans.lite,
    )
    costs = (advice.current_monthly_cost, advice.recommended_monthly_cost, advice.monthly_saving)
    assert [(cost.currency_code, cost.units) for cost in costs] == [("UZS", 120_000), ("UZS", 30_000), ("UZS", 90_000)]
    assert "saving of 90 000 UZS a month" in advice.explanation
    assert kept == advice


async def test_another_customers_line_advice_and_plan_changes_are_not_yours_whether_they_exist_or_not(
    system: OffersSystem,
) -> None:
    plans = await sold_plans(system.gateway, system.credentials)
    own_line, _ = await opened_line(system.gateway, system.credentials, plans.classic, plans.region)
    their_line, _ = await opened_line(system.gateway, system.credentials, plans.classic, plans.region)
    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        agent = OfferServiceStub(channel)
        their_advice = await agent.RecommendTariff(
            offers_service_pb2.RecommendTariffRequest(subscription=their_line), timeout=10
        )
        their_change = await agent.CreatePlanChange(change_request(their_line, plans.lite, BY_AGENT), timeout=10)
    someone = owner_of(their_line)
    asked_about = {
        "RecommendTariff": [
            their_line,
            f"{someone}/subscriptions/{uuid.uuid4()}",
            f"customers/{uuid.uuid4()}/subscriptions/{uuid.uuid4()}",
        ],
        "GetTariffRecommendation": [their_advice.name, f"tariffRecommendations/{uuid.uuid4()}"],
        "GetPlanChange": [their_change.name, f"planChanges/{uuid.uuid4()}"],
        "ListPlanChanges": [their_line, f"{someone}/subscriptions/{uuid.uuid4()}"],
    }

    async with customer_channel(system.gateway, system.credentials, owner_of(own_line)) as channel:
        offers = OfferServiceStub(channel)
        calls: dict[str, Callable[[str], Awaitable[object]]] = {
            "RecommendTariff": lambda name: offers.RecommendTariff(
                offers_service_pb2.RecommendTariffRequest(subscription=name), timeout=5
            ),
            "GetTariffRecommendation": lambda name: offers.GetTariffRecommendation(
                offers_service_pb2.GetTariffRecommendationRequest(name=name), timeout=5
            ),
            "GetPlanChange": lambda name: offers.GetPlanChange(
                offers_service_pb2.GetPlanChangeRequest(name=name), timeout=5
            ),
            "ListPlanChanges": lambda name: offers.ListPlanChanges(
                offers_service_pb2.ListPlanChangesRequest(subscription=name), timeout=5
            ),
        }
        answers = {
            method: [await refusal(calls[method](name)) for name in names] for method, names in asked_about.items()
        }
        own = await offers.ListPlanChanges(offers_service_pb2.ListPlanChangesRequest(subscription=own_line), timeout=5)

    for method, refusals in answers.items():
        first = refusals[0]
        assert (first.code, first.domain, first.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            GATEWAY_DOMAIN,
            "NOT_YOUR_RESOURCE",
        ), method
        # Someone else's resource that exists and one that does not get the same answer.
        assert all(other == first for other in refusals[1:]), (method, refusals)
    assert list(own.plan_changes) == []


async def test_a_customer_gets_their_own_next_best_actions_and_not_another_customers(system: OffersSystem) -> None:
    me, someone = await new_customer(system), await new_customer(system)
    nobody = f"customers/{uuid.uuid4()}"

    async with customer_channel(system.gateway, system.credentials, me) as channel:
        actions = NextBestActionServiceStub(channel)
        mine = await actions.GetNextBestActions(actions_request(me), timeout=10)
        theirs = await refusal(actions.GetNextBestActions(actions_request(someone), timeout=10))
        nobodys = await refusal(actions.GetNextBestActions(actions_request(nobody), timeout=10))

    assert (mine.customer, mine.channel) == (me, common_pb2.CHANNEL_APP)
    assert (theirs.code, theirs.domain, theirs.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        GATEWAY_DOMAIN,
        "NOT_YOUR_RESOURCE",
    )
    assert nobodys == theirs


# --- consent ---------------------------------------------------------------------------------------


async def test_an_agents_plan_change_without_acceptance_is_consent_required_and_the_tariff_stays(
    system: OffersSystem, customer_records: AsyncEngine
) -> None:
    plans = await sold_plans(system.gateway, system.credentials)
    subscription, _ = await opened_line(system.gateway, system.credentials, plans.classic, plans.region)
    before = await line_in_customer_service(system.customer, subscription)
    no_one_accepted = plan_change_pb2.Acceptance(channel=common_pb2.CHANNEL_CALL_CENTRE)

    async with employee_channel(system.gateway, system.credentials, ["agent"]) as channel:
        offers = OfferServiceStub(channel)
        refusals = [
            await refusal(offers.CreatePlanChange(change_request(subscription, plans.lite, acceptance), timeout=10))
            for acceptance in (None, no_one_accepted)
        ]
        await asyncio.sleep(SENDER_ROUNDS_SECONDS)  # the sender had its rounds: nothing was left for it
        history = await offers.ListPlanChanges(
            offers_service_pb2.ListPlanChangesRequest(subscription=subscription), timeout=5
        )

    for refused in refusals:
        assert (refused.code, refused.domain, refused.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            OFFERS_DOMAIN,
            "CONSENT_REQUIRED",
        )
    assert list(history.plan_changes) == []
    after = await line_in_customer_service(system.customer, subscription)
    assert (after.tariff_plan_id, after.etag, after.update_time) == (plans.classic, 'W/"1"', before.update_time)
    assert await tariffs_announced(customer_records, subscription) == [plans.classic]


# --- the saga --------------------------------------------------------------------------------------


async def test_accepted_plan_changes_apply_once_though_the_offers_service_is_killed_between_acceptance_and_update(
    postgres: PostgresCluster,
    worker_id: str,
    migrated_gateway_database_url: Callable[[str], str],
    local_credentials: LocalCredentials,
    customer_service: ServiceProcess,
    customer_records: AsyncEngine,
    logs: Path,
) -> None:
    offers_url = migrated_offers_database(postgres, f"offers_gateway_saga_{worker_id}")
    offers_records = create_async_engine(async_url(offers_url))
    first = start_offers("offers-1", offers_url, customer_service, logs, sender_interval=NEVER_SECONDS)
    running = [first]
    try:
        with refused_address() as nowhere:
            await wait_until_serving(first, OFFERS_SERVICE)
            database = migrated_gateway_database_url("gateway_offers_saga")
            gateway = start_gateway("gateway-saga", local_credentials, database, customer_service, first, nowhere, logs)
            # Stopped first: its health watches would hold a backend's shutdown for the whole grace period.
            running.insert(0, gateway)
            await wait_until_serving(gateway, OFFERS_SERVICE)
            plans = await sold_plans(gateway, local_credentials)
            for_themselves, _ = await opened_line(gateway, local_credentials, plans.classic, plans.region)
            for_them_by_agent, _ = await opened_line(gateway, local_credentials, plans.classic, plans.region)
            created = {
                line: await line_in_customer_service(customer_service, line)
                for line in (for_themselves, for_them_by_agent)
            }

            # The customer accepts in the app with their own token; an agent records another's consent in a shop.
            async with customer_channel(gateway, local_credentials, owner_of(for_themselves)) as channel:
                own_acceptance = await OfferServiceStub(channel).CreatePlanChange(
                    change_request(for_themselves, plans.lite, CUSTOMER_SELF), timeout=10
                )
            async with employee_channel(gateway, local_credentials, ["agent"], subject="agent-dilnoza") as channel:
                agents_record = await OfferServiceStub(channel).CreatePlanChange(
                    change_request(for_them_by_agent, plans.lite, BY_AGENT), timeout=10
                )
            accepted = {for_themselves: own_acceptance, for_them_by_agent: agents_record}

            # The window is real: both acceptances are committed and pending, neither line was touched.
            for line, change in accepted.items():
                assert change.state == plan_change_pb2.PLAN_CHANGE_STATE_ACCEPTED
                assert await plan_change_row(offers_records, change.name) == ("ACCEPTED", 0)
                assert await line_in_customer_service(customer_service, line) == created[line]
                assert await tariffs_announced(customer_records, line) == [plans.classic]

            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
            # Restarted where the gateway looks for it, as a Deployment's pod behind its Service.
            second = start_offers(
                "offers-2", offers_url, customer_service, logs, sender_interval=SOON_SECONDS, address=first.address
            )
            running.append(second)
            await wait_until_serving(second, OFFERS_SERVICE)
            assert second.address == first.address
            await wait_until_serving(gateway, OFFERS_SERVICE)  # the gateway sees the offers service again

            async with employee_channel(gateway, local_credentials, ["agent"]) as channel:
                offers = OfferServiceStub(channel)

                async def settled(change: plan_change_pb2.PlanChange) -> plan_change_pb2.PlanChange:
                    async with asyncio.timeout(30):
                        while True:
                            seen = await offers.GetPlanChange(
                                offers_service_pb2.GetPlanChangeRequest(name=change.name), timeout=5
                            )
                            if seen.state != plan_change_pb2.PLAN_CHANGE_STATE_ACCEPTED:
                                return seen
                            await asyncio.sleep(0.2)

                settled_changes = {line: await settled(change) for line, change in accepted.items()}
                applied_lines = {line: await line_in_customer_service(customer_service, line) for line in accepted}
                await asyncio.sleep(SENDER_ROUNDS_SECONDS)  # further rounds of the sender find nothing to send
                later_changes = {
                    line: await offers.GetPlanChange(
                        offers_service_pb2.GetPlanChangeRequest(name=change.name), timeout=5
                    )
                    for line, change in accepted.items()
                }
            async with customer_channel(gateway, local_credentials, owner_of(for_themselves)) as channel:
                as_the_customer_sees_it = await OfferServiceStub(channel).GetPlanChange(
                    offers_service_pb2.GetPlanChangeRequest(name=own_acceptance.name), timeout=5
                )

            for line, change in accepted.items():
                applied = settled_changes[line]
                assert applied.state == plan_change_pb2.PLAN_CHANGE_STATE_APPLIED, applied
                assert (applied.from_plan, applied.to_plan) == (plans.classic, plans.lite)
                assert applied.HasField("settle_time") and applied.acceptance == change.acceptance
                assert later_changes[line] == applied
                assert await plan_change_row(offers_records, change.name) == ("APPLIED", 1)
                assert await plan_change_states_announced(offers_records, change) == [
                    plan_change_pb2.PLAN_CHANGE_STATE_ACCEPTED,
                    plan_change_pb2.PLAN_CHANGE_STATE_APPLIED,
                ]
                # One update of the line: its version moved from 1 to 2, one new version was announced.
                on_new_plan = applied_lines[line]
                assert (on_new_plan.tariff_plan_id, on_new_plan.etag) == (plans.lite, 'W/"2"')
                assert on_new_plan.update_time.ToDatetime() > created[line].update_time.ToDatetime()
                assert await line_in_customer_service(customer_service, line) == on_new_plan
                assert await tariffs_announced(customer_records, line) == [plans.classic, plans.lite]
            evidence = own_acceptance.acceptance
            assert (evidence.acceptor_kind, evidence.accepted_by, evidence.channel) == (
                plan_change_pb2.ACCEPTOR_KIND_CUSTOMER,
                owner_of(for_themselves),
                common_pb2.CHANNEL_APP,
            )
            assert (agents_record.acceptance.accepted_by, agents_record.acceptance.channel) == (
                "agent-dilnoza",
                common_pb2.CHANNEL_RETAIL_SHOP,
            )
            assert as_the_customer_sees_it == settled_changes[for_themselves]
    finally:
        await offers_records.dispose()
        for process in running:
            await asyncio.to_thread(process.stop)
