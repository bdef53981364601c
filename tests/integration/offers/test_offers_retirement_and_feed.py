"""A retired plan's lines, known from the customer feed, are each proposed the cheapest plan that
covers their own usage and change only once the customer accepts; erasure in the customer service
clears the read model and the advice kept about the customer."""

from collections.abc import Awaitable, Callable

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.caller import Caller
from chassis.clock import ManualClock
from chassis.database import Database
from chassis.event_consumer import EventConsumer
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from crm.offers.v1 import offers_service_pb2, plan_change_pb2
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from services.offers import customer_events
from services.offers.customer_lines import CustomerLines
from services.offers.retirement import RetirementProposer
from services.offers.tariff_advice import TariffAdvisor
from services.offers.tariff_change_sender import TariffChangeSender
from tests.event_support import feed_end
from tests.integration.offers.catalog_support import create, fresh_region, tariff
from tests.integration.offers.line_support import Day, last_month, open_line, use_line
from tests.support import request_id

ApplyEvents = Callable[[], Awaitable[int]]


@pytest.fixture
def usage(customer_channel: grpc.aio.Channel) -> UsageServiceStub:
    return UsageServiceStub(customer_channel)


@pytest.fixture
def apply_customer_events(
    customer_channel: grpc.aio.Channel,
    customer_engine: AsyncEngine,
    offers_database: Database,
    offers_clock: ManualClock,
) -> ApplyEvents:
    """`await apply_customer_events()` applies every customer event committed so far to the offers database."""
    consumer = EventConsumer(
        name=customer_events.CONSUMER_NAME,
        producer=customer_events.PRODUCER_NAME,
        feed=customer_channel,
        database=offers_database,
        handler=customer_events.customer_event_handler(offers_clock),
        event_types=customer_events.EVENT_TYPES,
    )

    async def catch_up() -> int:
        await feed_end(customer_engine)
        return await consumer.catch_up(timeout_seconds=60)

    return catch_up


@pytest.fixture
def proposer(offers_database: Database, offers_clock: ManualClock, customer_lines: CustomerLines) -> RetirementProposer:
    return RetirementProposer(
        offers_database, offers_clock, TariffAdvisor(offers_database, offers_clock, customer_lines)
    )


async def test_a_retired_plans_line_is_proposed_the_cheapest_covering_plan_and_changes_only_when_accepted(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    usage: UsageServiceStub,
    customer_database: Database,
    apply_customer_events: ApplyEvents,
    proposer: RetirementProposer,
    plan_change_sender: TariffChangeSender,
):
    region = fresh_region()
    old = await create(offers, tariff("Old Unlimited", price=150_000, data_mb=50_000, regions=(region,)))
    lite = await create(offers, tariff("Lite", price=30_000, data_mb=2_000, regions=(region,)))
    # Cheaper on this usage with its overage, but it does not cover it.
    await create(offers, tariff("Tiny", price=10_000, data_mb=100, per_mb=10, regions=(region,)))
    await create(offers, tariff("Premium", price=90_000, promoted=True, regions=(region,)))
    subscription, msisdn = await open_line(customer_stub, plan=old, home_region=region)
    await use_line(
        usage, customer_database, subscription, msisdn, [Day(last_month(d), data_mb=100) for d in range(1, 11)]
    )
    await apply_customer_events()

    await offers.RetireProductOffering(
        offers_service_pb2.RetireProductOfferingRequest(name=old, request_id=request_id()), timeout=5
    )
    assert await proposer.propose_due() >= 1
    await plan_change_sender.send_due()

    history = await offers.ListPlanChanges(
        offers_service_pb2.ListPlanChangesRequest(subscription=subscription), timeout=5
    )
    [proposal] = history.plan_changes
    assert (proposal.state, proposal.origin) == (
        plan_change_pb2.PLAN_CHANGE_STATE_PROPOSED,
        plan_change_pb2.PLAN_CHANGE_ORIGIN_RETIREMENT,
    )
    assert (proposal.from_plan, proposal.to_plan) == (old, lite)
    line = await customer_stub.GetSubscription(
        customer_service_pb2.GetSubscriptionRequest(name=subscription), timeout=5
    )
    assert line.tariff_plan_id == old

    customer = Caller(subject=subscription.split("/")[1], kind="customer").to_metadata()
    accepted = await offers.AcceptPlanChange(
        offers_service_pb2.AcceptPlanChangeRequest(
            name=proposal.name,
            acceptance=plan_change_pb2.Acceptance(
                acceptor_kind=plan_change_pb2.ACCEPTOR_KIND_CUSTOMER, channel=common_pb2.CHANNEL_APP
            ),
            etag=proposal.etag,
            request_id=request_id(),
        ),
        metadata=customer,
        timeout=5,
    )
    assert accepted.state == plan_change_pb2.PLAN_CHANGE_STATE_ACCEPTED
    await plan_change_sender.send_due()
    line = await customer_stub.GetSubscription(
        customer_service_pb2.GetSubscriptionRequest(name=subscription), timeout=5
    )
    assert line.tariff_plan_id == lite


async def test_erasure_clears_the_read_model_and_the_advice_kept_about_the_customer(
    offers: OfferServiceStub,
    customer_stub: CustomerServiceStub,
    offers_engine: AsyncEngine,
    apply_customer_events: ApplyEvents,
):
    region = fresh_region()
    plan = await create(offers, tariff("Forgettable", price=20_000, regions=(region,)))
    subscription, _ = await open_line(customer_stub, plan=plan, home_region=region)
    await offers.RecommendTariff(offers_service_pb2.RecommendTariffRequest(subscription=subscription), timeout=10)
    await apply_customer_events()
    customer_id = subscription.split("/")[1]

    async def rows() -> tuple[int, int]:
        async with offers_engine.connect() as connection:
            lines = await connection.scalar(
                text("SELECT count(*) FROM lines WHERE customer_id = :c"), {"c": customer_id}
            )
            advice = await connection.scalar(
                text("SELECT count(*) FROM tariff_recommendations WHERE customer_id = :c"), {"c": customer_id}
            )
        return int(lines), int(advice)

    assert await rows() == (1, 1)
    ended = customer_pb2.Subscription(name=subscription, status=customer_pb2.SUBSCRIPTION_STATUS_TERMINATED)
    terminate = customer_service_pb2.UpdateSubscriptionRequest(subscription=ended)
    terminate.update_mask.paths.append("status")
    await customer_stub.UpdateSubscription(terminate, timeout=5)
    await customer_stub.EraseCustomer(
        customer_service_pb2.EraseCustomerRequest(name=f"customers/{customer_id}", request_id=request_id()), timeout=10
    )
    await apply_customer_events()
    assert await rows() == (0, 0)
