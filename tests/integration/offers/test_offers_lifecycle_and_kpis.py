"""Offers presented, accepted, declined and expired, each step an event on the offers feed; the
contact policy and consent decided again at presentation; and the KPIs of a period: take-up by offer
and by segment, and the retention effect from the customer service's status events."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import ManualClock
from chassis.database import Database
from chassis.wellknown import timestamp_to_proto
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.offers.v1 import next_best_action_pb2 as nba_pb2
from crm.offers.v1 import next_best_action_service_pb2 as nba_service_pb2
from crm.offers.v1 import offer_presentation_pb2 as presentation_pb2
from crm.offers.v1.next_best_action_service_pb2_grpc import NextBestActionServiceStub
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from services.offers.action_decisions import NextBestActionDecider
from services.offers.offer_presentations import OfferPresentations
from tests.integration.offers.action_support import (
    announce_churn,
    announce_segments,
    best_actions,
    create_rule,
    record_marketing_consent,
)
from tests.integration.offers.catalog_support import create, fresh_region, tariff
from tests.integration.offers.line_support import open_line
from tests.support import request_id

ApplyEvents = Callable[[], Awaitable[int]]


async def consenting_customer(
    offers: OfferServiceStub, customers: CustomerServiceStub, apply_customer_events: ApplyEvents, region: str
) -> tuple[str, str]:
    """A customer with marketing consent and a line in `region`, known to the offers read model; the
    customer and a cheaper plan of the region."""
    current = await create(offers, tariff("Eski", price=90_000, regions=(region,)))
    cheaper = await create(offers, tariff("Arzon", price=40_000, regions=(region,)))
    line, _ = await open_line(customers, plan=current, home_region=region)
    await apply_customer_events()
    customer = line.split("/subscriptions/")[0]
    await record_marketing_consent(customers, customer, customer_pb2.CONSENT_DECISION_GRANTED)
    return customer, cheaper


async def bundle_offer_for_consenting_customer(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customers: CustomerServiceStub,
    apply_customer_events: ApplyEvents,
) -> tuple[str, str]:
    """A consenting customer in a region of their own, and a rule offering them a cheaper plan's bundle."""
    region = fresh_region()
    customer, cheaper = await consenting_customer(offers, customers, apply_customer_events, region)
    rule = await create_rule(next_best_actions, region, nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering=cheaper)
    return customer, rule


async def present(
    next_best_actions: NextBestActionServiceStub, customer: str, rule: str, request: str = ""
) -> presentation_pb2.OfferPresentation:
    return await next_best_actions.PresentOffer(
        nba_service_pb2.PresentOfferRequest(
            customer=customer, rule=rule, channel=common_pb2.CHANNEL_CALL_CENTRE, request_id=request or request_id()
        ),
        timeout=10,
    )


async def answer(
    next_best_actions: NextBestActionServiceStub, name: str, accept: bool
) -> presentation_pb2.OfferPresentation:
    if accept:
        return await next_best_actions.AcceptOffer(
            nba_service_pb2.AcceptOfferRequest(name=name, channel=common_pb2.CHANNEL_APP, request_id=request_id()),
            timeout=5,
        )
    return await next_best_actions.DeclineOffer(
        nba_service_pb2.DeclineOfferRequest(name=name, channel=common_pb2.CHANNEL_APP, request_id=request_id()),
        timeout=5,
    )


async def feed_types(offers_engine: AsyncEngine, customer: str) -> list[str]:
    async with offers_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT type FROM outbox WHERE aggregateid = :c AND type LIKE 'crm.offers.v1.Offer%' ORDER BY seq"),
            {"c": customer},
        )
        return [row.type for row in rows]


async def test_an_offer_presented_then_accepted_is_announced_at_each_step_and_answered_once(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    apply_customer_events: ApplyEvents,
    offers_engine: AsyncEngine,
):
    customer, rule = await bundle_offer_for_consenting_customer(
        offers, next_best_actions, customer_stub, apply_customer_events
    )
    presented = await present(next_best_actions, customer, rule)
    assert presented.state == presentation_pb2.OFFER_STATE_PRESENTED
    assert presented.channel == common_pb2.CHANNEL_CALL_CENTRE and presented.present_time.seconds > 0
    accepted = await answer(next_best_actions, presented.name, accept=True)
    assert accepted.state == presentation_pb2.OFFER_STATE_ACCEPTED and accepted.decide_channel == common_pb2.CHANNEL_APP
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await answer(next_best_actions, presented.name, accept=False)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await feed_types(offers_engine, customer) == ["crm.offers.v1.OfferPresented", "crm.offers.v1.OfferAccepted"]


async def test_presenting_decides_again_consent_and_the_weekly_cap_and_a_retry_gets_the_first_answer(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    apply_customer_events: ApplyEvents,
):
    customer, rule = await bundle_offer_for_consenting_customer(
        offers, next_best_actions, customer_stub, apply_customer_events
    )
    await present(next_best_actions, customer, rule)
    retried_id = request_id()
    second = await present(next_best_actions, customer, rule, retried_id)
    # The default policy allows two offers a week per channel: the retry of the second is its first answer.
    assert (await present(next_best_actions, customer, rule, retried_id)).name == second.name
    with pytest.raises(grpc.aio.AioRpcError) as capped:
        await present(next_best_actions, customer, rule)
    assert capped.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CONTACT_LIMIT" in str(capped.value.trailing_metadata()) or "7 days" in (capped.value.details() or "")

    await record_marketing_consent(customer_stub, customer, customer_pb2.CONSENT_DECISION_REVOKED)
    other_channel = nba_service_pb2.PresentOfferRequest(
        customer=customer, rule=rule, channel=common_pb2.CHANNEL_WEB, request_id=request_id()
    )
    with pytest.raises(grpc.aio.AioRpcError) as no_consent:
        await next_best_actions.PresentOffer(other_channel, timeout=10)
    assert no_consent.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "marketing consent" in (no_consent.value.details() or "")


async def test_concurrent_presentations_to_one_customer_stay_within_the_weekly_cap(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    apply_customer_events: ApplyEvents,
    offers_engine: AsyncEngine,
):
    customer, rule = await bundle_offer_for_consenting_customer(
        offers, next_best_actions, customer_stub, apply_customer_events
    )
    outcomes = await asyncio.gather(
        *(present(next_best_actions, customer, rule) for _ in range(6)), return_exceptions=True
    )
    presented = [o for o in outcomes if isinstance(o, presentation_pb2.OfferPresentation)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    # The default policy allows two offers a week per channel.
    assert len(presented) == 2 and len(refused) == 4
    assert {r.code() for r in refused} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert all("CONTACT_LIMIT" in str(r.trailing_metadata()) for r in refused)
    assert await feed_types(offers_engine, customer) == ["crm.offers.v1.OfferPresented"] * 2


async def test_a_declined_offer_cools_down_and_an_unanswered_one_expires_on_schedule(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    apply_customer_events: ApplyEvents,
    offers_database: Database,
    offers_clock: ManualClock,
    offers_engine: AsyncEngine,
):
    region = fresh_region()
    customer, cheaper = await consenting_customer(offers, customer_stub, apply_customer_events, region)
    declined_rule = await create_rule(next_best_actions, region, nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering=cheaper)
    ignored_rule = await create_rule(next_best_actions, region, nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering=cheaper)
    declined = await present(next_best_actions, customer, declined_rule)
    ignored = await present(next_best_actions, customer, ignored_rule)
    await answer(next_best_actions, declined.name, accept=False)
    after_decline = await best_actions(next_best_actions, customer)
    assert {p.rule: p.reason for p in after_decline.passed_over}[declined_rule] == "DECLINE_COOL_DOWN"

    # The expiry runs on its own clock, past the offer's 14 days, without moving the shared one.
    later = ManualClock(offers_clock.now() + timedelta(days=15))
    assert (
        await OfferPresentations(
            offers_database, later, NextBestActionDecider(offers_database, later, None)
        ).expire_due()
        >= 1
    )
    expired = await next_best_actions.GetOfferPresentation(
        nba_service_pb2.GetOfferPresentationRequest(name=ignored.name), timeout=5
    )
    assert expired.state == presentation_pb2.OFFER_STATE_EXPIRED
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await answer(next_best_actions, ignored.name, accept=True)
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "crm.offers.v1.OfferExpired" in await feed_types(offers_engine, customer)
    assert "crm.offers.v1.OfferDeclined" in await feed_types(offers_engine, customer)


async def test_kpis_give_take_up_by_offer_and_segment_and_churn_after_accepting_or_declining_retention(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    apply_customer_events: ApplyEvents,
    offers_database: Database,
    offers_clock: ManualClock,
    offers_engine: AsyncEngine,
):
    # Presentations of the tests before stand at the shared clock's time; this period starts after them.
    start = offers_clock.advance(timedelta(seconds=1))
    region = fresh_region()
    kept, cheaper = await consenting_customer(offers, customer_stub, apply_customer_events, region)
    lost, _ = await consenting_customer(offers, customer_stub, apply_customer_events, region)
    for customer in (kept, lost):
        await announce_segments(offers_database, customer, ["churn-risk-high"])
    retention = await create_rule(
        next_best_actions,
        region,
        nba_pb2.ACTION_KIND_RETENTION_OFFER,
        offering=cheaper,
        required_segments=("churn-risk-high",),
    )
    await answer(next_best_actions, (await present(next_best_actions, kept, retention)).name, accept=True)
    await answer(next_best_actions, (await present(next_best_actions, lost, retention)).name, accept=False)
    await customer_stub.ChangeCustomerStatus(
        customer_service_pb2.ChangeCustomerStatusRequest(
            name=lost,
            status=customer_pb2.CUSTOMER_STATUS_CHURNED,
            churn_reason=customer_pb2.CHURN_REASON_PORTED_TO_COMPETITOR,
            request_id=request_id(),
        ),
        timeout=5,
    )
    await apply_customer_events()
    async with offers_engine.connect() as connection:
        churned = await connection.scalar(
            text("SELECT churn_time FROM customer_churn WHERE customer_id = :c"), {"c": lost.removeprefix("customers/")}
        )
    assert churned is not None
    # The customer service's clock is the wall clock, which the shared test clock may run ahead of: the
    # same status event, stamped 10 days after the answer, makes the 90-day window certain.
    await announce_churn(offers_database, lost, offers_clock.now() + timedelta(days=10))

    kpis = await next_best_actions.GetOfferKpis(
        nba_service_pb2.GetOfferKpisRequest(
            start_time=timestamp_to_proto(start), end_time=timestamp_to_proto(offers_clock.now() + timedelta(seconds=1))
        ),
        timeout=10,
    )
    assert (kpis.presented, kpis.accepted, kpis.declined) == (2, 1, 1)
    assert kpis.take_up_rate == pytest.approx(0.5)
    by_offer = {rate.key: (rate.presented, rate.accepted) for rate in kpis.by_offer}
    assert by_offer == {retention: (2, 1)}
    by_segment = {rate.key: (rate.presented, rate.accepted) for rate in kpis.by_segment}
    assert by_segment["churn-risk-high"] == (2, 1)
    assert (kpis.retention_accepted.customers, kpis.retention_accepted.churned) == (1, 0)
    assert (kpis.retention_declined.customers, kpis.retention_declined.churned) == (1, 1)
    assert "0.0% of 1 customers after accepting" in kpis.retention_effect


async def test_kpis_of_a_period_that_ends_before_it_starts_are_invalid(next_best_actions: NextBestActionServiceStub):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await next_best_actions.GetOfferKpis(
            nba_service_pb2.GetOfferKpisRequest(
                start_time=timestamp_to_proto(ManualClock().now()),
                end_time=timestamp_to_proto(ManualClock().now() - timedelta(days=1)),
            ),
            timeout=5,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
