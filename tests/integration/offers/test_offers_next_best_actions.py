"""Next-best actions against the real customer service: no marketing action without the customer's
marketing consent as the customer service holds it, retention first for a customer the customer
feed puts at high churn risk, every other rule passed over with its reason, and bad rules refused
without writing anything."""

from collections.abc import Awaitable, Callable

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.database import Database
from crm.customer.v1 import customer_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.offers.v1 import next_best_action_pb2 as nba_pb2
from crm.offers.v1 import next_best_action_service_pb2 as nba_service_pb2
from crm.offers.v1.next_best_action_service_pb2_grpc import NextBestActionServiceStub
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from tests.integration.offers.action_support import (
    announce_segments,
    best_actions,
    create_rule,
    record_marketing_consent,
)
from tests.integration.offers.catalog_support import create, fresh_region, tariff
from tests.integration.offers.line_support import open_line
from tests.support import request_id

ApplyEvents = Callable[[], Awaitable[int]]


async def customer_with_line(
    offers: OfferServiceStub, customers: CustomerServiceStub, apply_customer_events: ApplyEvents
) -> tuple[str, str, str]:
    """A customer with a line on a plan of a fresh region, known to the offers read model; returns
    the customer, the region and a cheaper plan of the region."""
    region = fresh_region()
    current = await create(offers, tariff("Eski", price=90_000, regions=(region,)))
    cheaper = await create(offers, tariff("Arzon", price=40_000, regions=(region,)))
    line, _ = await open_line(customers, plan=current, home_region=region)
    await apply_customer_events()
    return line.split("/subscriptions/")[0], region, cheaper


def chosen(answer: nba_pb2.NextBestActions) -> list[str]:
    return [action.rule for action in answer.actions]


def passed_over(answer: nba_pb2.NextBestActions) -> dict[str, str]:
    return {p.rule: p.reason for p in answer.passed_over}


async def test_no_marketing_action_without_the_customers_marketing_consent(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    apply_customer_events: ApplyEvents,
):
    customer, region, cheaper = await customer_with_line(offers, customer_stub, apply_customer_events)
    offer = await create_rule(next_best_actions, region, nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering=cheaper)
    notice = await create_rule(next_best_actions, region, nba_pb2.ACTION_KIND_SERVICE_MESSAGE, value=1.0)

    never_asked = await best_actions(next_best_actions, customer)
    assert chosen(never_asked) == [notice]
    assert passed_over(never_asked)[offer] == "NO_MARKETING_CONSENT"
    assert not never_asked.marketing_permitted

    await record_marketing_consent(customer_stub, customer, customer_pb2.CONSENT_DECISION_GRANTED)
    granted = await best_actions(next_best_actions, customer)
    assert set(chosen(granted)) == {offer, notice}
    assert granted.marketing_permitted
    reason = next(action.reason for action in granted.actions if action.rule == offer)
    assert "granted through APP" in reason

    await record_marketing_consent(customer_stub, customer, customer_pb2.CONSENT_DECISION_REVOKED)
    revoked = await best_actions(next_best_actions, customer)
    assert chosen(revoked) == [notice]
    assert "revoked" in next(p.explanation for p in revoked.passed_over if p.rule == offer)


async def test_a_customer_at_high_churn_risk_gets_the_retention_offer_first_with_every_factor_shown(
    offers: OfferServiceStub,
    next_best_actions: NextBestActionServiceStub,
    customer_stub: CustomerServiceStub,
    offers_database: Database,
    apply_customer_events: ApplyEvents,
):
    customer, region, cheaper = await customer_with_line(offers, customer_stub, apply_customer_events)
    await record_marketing_consent(customer_stub, customer, customer_pb2.CONSENT_DECISION_GRANTED)
    retention = await create_rule(
        next_best_actions,
        region,
        nba_pb2.ACTION_KIND_RETENTION_OFFER,
        offering=cheaper,
        value=5.0,
        required_segments=("churn-risk-high",),
    )
    bundle = await create_rule(
        next_best_actions, region, nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering=cheaper, value=900.0
    )

    before = await best_actions(next_best_actions, customer)
    assert chosen(before) == [bundle]
    assert passed_over(before)[retention] == "SEGMENT_REQUIRED"

    await announce_segments(offers_database, customer, ["churn-risk-high", "usage-low-user"])
    at_risk = await best_actions(next_best_actions, customer)
    assert chosen(at_risk) == [retention, bundle]
    first = at_risk.actions[0]
    assert first.priority == pytest.approx(first.propensity.value * 5.0 * 1.0)
    assert "high risk of leaving" in first.reason
    assert "churn-risk-high" in at_risk.segments

    await announce_segments(offers_database, customer, [], left=["churn-risk-high"])
    assert chosen(await best_actions(next_best_actions, customer)) == [bundle]


async def test_a_rule_without_a_kind_or_with_an_unknown_offering_is_refused_and_writes_nothing(
    next_best_actions: NextBestActionServiceStub, offers_engine: AsyncEngine
):
    for rule, code in (
        (nba_pb2.ActionRule(display_name="No kind", offering="plans/x"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            nba_pb2.ActionRule(display_name="Ghost", kind=nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering="plans/no-such"),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            nba_pb2.ActionRule(display_name="Bad", kind=nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering="plans/x", value=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await next_best_actions.CreateActionRule(
                nba_service_pb2.CreateActionRuleRequest(
                    action_rule=rule, action_rule_id="never-written", request_id=request_id()
                ),
                timeout=5,
            )
        assert refused.value.code() == code, refused.value.details()
    async with offers_engine.connect() as connection:
        assert (await connection.scalar(text("SELECT count(*) FROM action_rules WHERE rule_id = 'never-written'"))) == 0


async def test_a_rule_changes_by_field_mask_and_a_stale_etag_is_aborted(
    offers: OfferServiceStub, next_best_actions: NextBestActionServiceStub
):
    region = fresh_region()
    plan = await create(offers, tariff("Yangi", price=30_000, regions=(region,)))
    name = await create_rule(next_best_actions, region, nba_pb2.ACTION_KIND_BUNDLE_OFFER, offering=plan)
    rule = await next_best_actions.GetActionRule(nba_service_pb2.GetActionRuleRequest(name=name), timeout=5)
    update = nba_service_pb2.UpdateActionRuleRequest(
        action_rule=nba_pb2.ActionRule(name=name, business_weight=2.5, etag=rule.etag), request_id=request_id()
    )
    update.update_mask.paths.append("business_weight")
    updated = await next_best_actions.UpdateActionRule(update, timeout=5)
    assert updated.business_weight == 2.5 and updated.value == rule.value and updated.etag != rule.etag
    stale = nba_service_pb2.UpdateActionRuleRequest(
        action_rule=nba_pb2.ActionRule(name=name, active=False, etag=rule.etag), request_id=request_id()
    )
    stale.update_mask.paths.append("active")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await next_best_actions.UpdateActionRule(stale, timeout=5)
    assert refused.value.code() == grpc.StatusCode.ABORTED
