"""The read model next-best actions decide on, kept exactly once from the feeds: the customer feed's
monthly usage (a 4G bundle offered only to the line used on 4G in a covered city), the loyalty feed's
tier changes (loyalty-linked offers), and erasure clearing all of it."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import any_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.database import Database
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2, usage_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from crm.loyalty.v1 import events_pb2 as loyalty_events_pb2
from crm.loyalty.v1 import loyalty_pb2
from crm.offers.v1 import coverage_pb2, offers_service_pb2
from crm.offers.v1 import next_best_action_pb2 as nba_pb2
from crm.offers.v1.next_best_action_service_pb2_grpc import NextBestActionServiceStub
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from services.customer.usage.publisher import publish_changed_months
from services.offers import loyalty_events
from tests.integration.offers.action_support import best_actions, create_rule, record_marketing_consent
from tests.integration.offers.catalog_support import create, fresh_region, tariff
from tests.integration.offers.line_support import Day, last_month, open_line, use_line
from tests.support import request_id

ApplyEvents = Callable[[], Awaitable[int]]


@pytest.fixture
def usage(customer_channel: grpc.aio.Channel) -> UsageServiceStub:
    return UsageServiceStub(customer_channel)


def customer_of(line: str) -> str:
    return line.split("/subscriptions/")[0]


async def loyalty_event(
    database: Database, message: loyalty_events_pb2.TierChanged | loyalty_events_pb2.AccountOpened
) -> None:
    payload = any_pb2.Any()
    payload.Pack(message)
    event = common_events_pb2.Event(
        event_id="00000000-0000-4000-8000-000000000000", event_type=message.DESCRIPTOR.full_name, payload=payload
    )
    async with database.transaction() as session:
        await loyalty_events.apply_loyalty_event(session, event, datetime.now(UTC))


async def test_a_4g_bundle_is_offered_from_the_feeds_usage_only_to_the_line_used_on_4g_in_a_covered_city(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    usage: UsageServiceStub,
    customer_database: Database,
    apply_customer_events: ApplyEvents,
    offers_engine: AsyncEngine,
):
    await offers.ReplaceCoverage(
        offers_service_pb2.ReplaceCoverageRequest(
            market="KZ",
            areas=[
                coverage_pb2.CoverageArea(
                    area="Almaty", technologies=[usage_pb2.RADIO_TECHNOLOGY_2G, usage_pb2.RADIO_TECHNOLOGY_4G]
                ),
                coverage_pb2.CoverageArea(area="Aul Saryagash", technologies=[usage_pb2.RADIO_TECHNOLOGY_2G]),
            ],
            request_id=request_id(),
        ),
        timeout=5,
    )
    region = fresh_region()
    basic = await create(offers, tariff("Basic", price=90_000, market="KZ", regions=(region,)))
    video = await create(
        offers,
        tariff("Video 4G", price=10_000, market="KZ", technology=usage_pb2.RADIO_TECHNOLOGY_4G, regions=(region,)),
        "b",
    )
    village, village_number = await open_line(customer_stub, plan=basic, home_region=region)
    city, city_number = await open_line(customer_stub, plan=basic, home_region=region)
    on_2g = [
        Day(last_month(d), area="Aul Saryagash", technology=usage_pb2.RADIO_TECHNOLOGY_2G, data_mb=5) for d in (1, 2)
    ]
    await use_line(usage, customer_database, village, village_number, on_2g)
    await use_line(
        usage, customer_database, city, city_number, [Day(last_month(d), area="ALMATY", data_mb=50) for d in (1, 2)]
    )
    await publish_changed_months(customer_database)
    for line in (village, city):
        await record_marketing_consent(customer_stub, customer_of(line), customer_pb2.CONSENT_DECISION_GRANTED)
    await apply_customer_events()
    # Caught up again: the customer service may announce more meanwhile (its segment evaluation runs on
    # its own), but what was applied stays applied once, as the month count below shows.
    await apply_customer_events()
    rule = await create_rule(next_best_actions, region, nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering=video)

    city_actions = await best_actions(next_best_actions, customer_of(city))
    village_actions = await best_actions(next_best_actions, customer_of(village))
    assert rule in [action.rule for action in city_actions.actions], [
        p for p in city_actions.passed_over if p.rule == rule
    ]
    refused = {p.rule: p for p in village_actions.passed_over}
    assert refused[rule].reason == "NO_COVERAGE" and "Aul Saryagash" in refused[rule].explanation
    async with offers_engine.connect() as connection:
        months = await connection.scalar(
            text("SELECT count(*) FROM line_usage_months WHERE subscription_id = :s"),
            {"s": city.split("/subscriptions/")[1]},
        )
    assert months == 1


async def test_tier_changes_from_the_loyalty_feed_choose_loyalty_offers_and_erasure_clears_the_read_model(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    apply_customer_events: ApplyEvents,
    offers_database: Database,
    offers_engine: AsyncEngine,
):
    region = fresh_region()
    plan = await create(offers, tariff("Oddiy", price=60_000, regions=(region,)))
    line, _ = await open_line(customer_stub, plan=plan, home_region=region)
    customer = customer_of(line)
    customer_id = customer.removeprefix("customers/")
    await record_marketing_consent(customer_stub, customer, customer_pb2.CONSENT_DECISION_GRANTED)
    await apply_customer_events()
    gold = await create_rule(
        next_best_actions, region, nba_pb2.ACTION_KIND_LOYALTY_OFFER, offering=plan, loyalty_tiers=("gold",)
    )
    account = f"accounts/{customer_id}"
    await loyalty_event(
        offers_database,
        loyalty_events_pb2.AccountOpened(account=loyalty_pb2.Account(name=account, customer=customer, tier="silver")),
    )
    silver = await best_actions(next_best_actions, customer)
    assert {p.rule: p.reason for p in silver.passed_over}[gold] == "LOYALTY_TIER_REQUIRED"
    await loyalty_event(
        offers_database, loyalty_events_pb2.TierChanged(account=account, previous_tier="silver", tier="gold")
    )
    golden = await best_actions(next_best_actions, customer)
    assert golden.loyalty_tier == "gold" and gold in [action.rule for action in golden.actions]

    ended = customer_pb2.Subscription(name=line, status=customer_pb2.SUBSCRIPTION_STATUS_TERMINATED)
    terminate = customer_service_pb2.UpdateSubscriptionRequest(subscription=ended)
    terminate.update_mask.paths.append("status")
    await customer_stub.UpdateSubscription(terminate, timeout=5)
    erase = customer_service_pb2.EraseCustomerRequest(name=customer, request_id=request_id())
    await customer_stub.EraseCustomer(erase, timeout=10)
    await apply_customer_events()
    async with offers_engine.connect() as connection:
        for table in ("customer_segments", "loyalty_accounts", "line_usage_months", "lines", "offer_presentations"):
            left = await connection.scalar(
                text(f"SELECT count(*) FROM {table} WHERE customer_id = :c"), {"c": customer_id}
            )
            assert left == 0, table
