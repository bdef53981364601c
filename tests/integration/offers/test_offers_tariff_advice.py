"""Honest tariff advice on the real customer service's usage profiles and the real offers database:
the cheapest covering plan first with the saving stated, per-day-of-use plans costed by active days,
technology eligibility by coverage and by the technologies used, and a line without usage told so."""

import grpc
import pytest

from chassis.database import Database
from crm.customer.v1 import usage_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from crm.offers.v1 import catalog_pb2, coverage_pb2, offers_service_pb2, recommendation_pb2
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from tests.integration.offers.catalog_support import create, fresh_region, tariff
from tests.integration.offers.line_support import Day, last_month, open_line, use_line
from tests.support import failure, request_id


@pytest.fixture
def usage(customer_channel: grpc.aio.Channel) -> UsageServiceStub:
    return UsageServiceStub(customer_channel)


async def _recommend(offers: OfferServiceStub, subscription: str) -> recommendation_pb2.TariffRecommendation:
    return await offers.RecommendTariff(
        offers_service_pb2.RecommendTariffRequest(subscription=subscription), timeout=10
    )


async def test_a_line_on_an_expensive_old_plan_with_small_usage_gets_the_cheapest_covering_plan_first(
    offers: OfferServiceStub, customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    region = fresh_region()
    classic = await create(offers, tariff("Classic", price=120_000, data_mb=20_000, regions=(region,)))
    lite = await create(offers, tariff("Lite", price=30_000, on_net=200, data_mb=2_000, regions=(region,)))
    await create(offers, tariff("Mid", price=60_000, regions=(region,)))
    premium = await create(offers, tariff("Premium", price=90_000, promoted=True, regions=(region,)))
    subscription, msisdn = await open_line(customer_stub, plan=classic, home_region=region)
    days = [Day(last_month(d), on_net_minutes=10, off_net_minutes=3, data_mb=150) for d in range(1, 11)]
    await use_line(usage, customer_database, subscription, msisdn, days)

    advice = await _recommend(offers, subscription)

    assert advice.outcome == recommendation_pb2.RECOMMENDATION_OUTCOME_SWITCH
    assert (advice.current_plan, advice.recommended_plan) == (classic, lite)
    assert (advice.current_monthly_cost.units, advice.recommended_monthly_cost.units) == (120_000, 30_000)
    assert advice.monthly_saving.units == 90_000
    assert "saving of 90 000 UZS a month" in advice.explanation
    assert "100 on-net and 30 off-net minutes" in advice.usage_summary
    first = advice.options[0]
    assert (first.plan, first.rank, first.covers_usage) == (lite, 1, True)
    promoted = next(o for o in advice.options if o.plan == premium)
    assert promoted.promoted and promoted.extra_monthly_cost.units == 60_000
    assert "Promoted by the operator" in promoted.explanation
    kept = await offers.GetTariffRecommendation(
        offers_service_pb2.GetTariffRecommendationRequest(name=advice.name), timeout=5
    )
    assert kept == advice


async def test_a_data_line_used_on_a_few_days_is_costed_by_active_days_on_a_per_day_of_use_plan(
    offers: OfferServiceStub, customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    region = fresh_region()
    monthly = await create(offers, tariff("Data Month", price=40_000, data_mb=10_000, regions=(region,)))
    daily = await create(
        offers,
        tariff(
            "Data Day Pass",
            price=3_000,
            model=catalog_pb2.PRICE_MODEL_PER_DAY_OF_USE,
            data_mb=10_000,
            regions=(region,),
        ),
    )
    subscription, msisdn = await open_line(customer_stub, plan=monthly, home_region=region)
    await use_line(
        usage, customer_database, subscription, msisdn, [Day(last_month(d), data_mb=400) for d in (3, 9, 17, 25)]
    )

    advice = await _recommend(offers, subscription)

    assert advice.recommended_plan == daily
    day_pass = advice.options[0]
    recurring = day_pass.months[0].charges[0]
    assert (recurring.item, recurring.units, recurring.amount.units) == ("recurring", 4, 12_000)
    assert "4 days of use" in recurring.description
    assert (day_pass.expected_monthly_cost.units, advice.monthly_saving.units) == (12_000, 28_000)


async def test_a_plan_that_needs_4g_is_not_for_a_2g_village_line_and_is_for_a_4g_city_line(
    offers: OfferServiceStub, customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    await offers.ReplaceCoverage(
        offers_service_pb2.ReplaceCoverageRequest(
            market="KZ",
            areas=[
                coverage_pb2.CoverageArea(
                    area="Almaty",
                    technologies=[usage_pb2.RADIO_TECHNOLOGY_2G, usage_pb2.RADIO_TECHNOLOGY_4G],
                ),
                coverage_pb2.CoverageArea(area="Aul Saryagash", technologies=[usage_pb2.RADIO_TECHNOLOGY_2G]),
            ],
            request_id=request_id(),
        ),
        timeout=5,
    )
    region = fresh_region()
    basic = await create(offers, tariff("Basic", price=90_000, market="KZ", regions=(region,)))
    video_plan = tariff(
        "Video 4G", price=10_000, market="KZ", technology=usage_pb2.RADIO_TECHNOLOGY_4G, regions=(region,)
    )
    video = await create(offers, video_plan)
    village, village_number = await open_line(customer_stub, plan=basic, home_region=region)
    city, city_number = await open_line(customer_stub, plan=basic, home_region=region)
    on_2g = [
        Day(last_month(d), area="Aul Saryagash", technology=usage_pb2.RADIO_TECHNOLOGY_2G, data_mb=5) for d in (1, 2)
    ]
    on_4g = [Day(last_month(d), area="ALMATY", data_mb=50) for d in (1, 2)]
    await use_line(usage, customer_database, village, village_number, on_2g)
    await use_line(usage, customer_database, city, city_number, on_4g)

    village_advice = await _recommend(offers, village)
    city_advice = await _recommend(offers, city)

    assert village_advice.recommended_plan == basic
    refused = {p.plan: p for p in village_advice.ineligible_plans}
    assert refused[video].reason == "NO_COVERAGE"
    assert "Aul Saryagash" in refused[video].explanation
    assert city_advice.recommended_plan == video
    assert video not in {p.plan for p in city_advice.ineligible_plans}


async def test_a_line_without_usage_is_told_so(offers: OfferServiceStub, customer_stub: CustomerServiceStub):
    region = fresh_region()
    plan = await create(offers, tariff("New Line", price=30_000, regions=(region,)))
    subscription, _ = await open_line(customer_stub, plan=plan, home_region=region)
    advice = await _recommend(offers, subscription)
    assert advice.outcome == recommendation_pb2.RECOMMENDATION_OUTCOME_NO_USAGE
    assert not advice.options and not advice.recommended_plan
    assert "no usage yet" in advice.explanation


async def test_a_line_on_a_plan_the_catalog_does_not_know_is_failed_precondition(
    offers: OfferServiceStub, customer_stub: CustomerServiceStub
):
    subscription, _ = await open_line(customer_stub, plan="plans/unknown-legacy", home_region=fresh_region())
    code, error = await failure(_recommend(offers, subscription))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CURRENT_PLAN_UNKNOWN")


async def test_a_line_that_does_not_exist_is_not_found(offers: OfferServiceStub):
    name = "customers/00000000-0000-4000-8000-000000000001/subscriptions/00000000-0000-4000-8000-000000000002"
    code, _ = await failure(_recommend(offers, name))
    assert code == grpc.StatusCode.NOT_FOUND
