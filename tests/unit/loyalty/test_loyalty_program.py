"""The program's plain rules: checking a program, conditions of earning rules, points per payment,
usage and tenure with multipliers and caps, tiers by qualifying points, reward eligibility."""

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chassis.errors import FailedPrecondition, InvalidArgument
from services.loyalty import ledger, program_rules, rewards
from services.loyalty.program_rules import (
    DEFAULT_PROGRAM,
    Action,
    Condition,
    CustomerFacts,
    EarningRule,
    Money,
    MonthlyUsage,
    Tier,
    Trigger,
    UsageMeasure,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BRONZE, GOLD = DEFAULT_PROGRAM.tier("bronze"), DEFAULT_PROGRAM.tier("gold")


def payment_rule(**action: object) -> EarningRule:
    return EarningRule(
        id="payments",
        display_name="Payments",
        trigger=Trigger.PAYMENT_RECEIVED,
        condition=Condition(currency_code="UZS"),
        action=Action(points=1, per_amount=Money("UZS", Decimal(1000)), **action),  # type: ignore[arg-type]
    )


def violations_of(candidate: program_rules.Program) -> set[str]:
    with pytest.raises(InvalidArgument) as raised:
        program_rules.check_program(candidate)
    return {v.field for v in raised.value.violations}


def test_the_built_in_program_is_valid():
    program_rules.check_program(DEFAULT_PROGRAM)


def test_tiers_must_start_at_zero_and_rise():
    tiers = (Tier("bronze", "Bronze", 10), Tier("silver", "Silver", 5), Tier("silver", "Again", 50, 50))
    fields = violations_of(replace(DEFAULT_PROGRAM, tiers=tiers))
    assert {
        "program.tiers[0].qualifying_points",
        "program.tiers[1].qualifying_points",
        "program.tiers[2].id",
        "program.tiers[2].earn_multiplier_percent",
    } <= fields


def test_a_payment_rule_needs_a_currency_and_an_amount_in_it():
    broken = replace(
        payment_rule(),
        condition=Condition(),
        action=Action(points=1, per_amount=Money("USD", Decimal(0))),
    )
    fields = violations_of(replace(DEFAULT_PROGRAM, earning_rules=(broken,)))
    assert {"program.earning_rules[0].condition.currency_code", "program.earning_rules[0].action.per_amount"} <= fields


def test_a_usage_rule_needs_a_measure_and_a_quantity():
    broken = EarningRule("usage", "Usage", Trigger.MONTHLY_USAGE, Condition(), Action(points=5))
    fields = violations_of(replace(DEFAULT_PROGRAM, earning_rules=(broken,)))
    assert {"program.earning_rules[0].action.measure", "program.earning_rules[0].action.per_quantity"} <= fields


def test_durations_outside_one_second_to_ten_years_are_refused():
    fields = violations_of(
        replace(DEFAULT_PROGRAM, points_validity=timedelta(0), tier_review_period=timedelta(days=4000))
    )
    assert {"program.points_validity", "program.tier_review_period"} <= fields


def test_payments_earn_per_whole_amount_with_the_tier_multiplier():
    rule = payment_rule(apply_tier_multiplier=True)
    assert program_rules.payment_points(rule, Money("UZS", Decimal("85999.99")), BRONZE) == 85
    assert program_rules.payment_points(rule, Money("UZS", Decimal(85000)), GOLD) == 106
    assert program_rules.payment_points(rule, Money("UAH", Decimal(85000)), GOLD) == 0


def test_a_cap_limits_the_points_of_one_event():
    assert program_rules.payment_points(payment_rule(max_points=50), Money("UZS", Decimal(1_000_000)), BRONZE) == 50


def test_usage_points_count_whole_units_up_to_the_monthly_cap():
    data = EarningRule(
        "data",
        "Data",
        Trigger.MONTHLY_USAGE,
        Condition(),
        Action(10, measure=UsageMeasure.DATA_GB, per_quantity=1.0, max_points=200),
    )
    voice = EarningRule(
        "voice",
        "Voice",
        Trigger.MONTHLY_USAGE,
        Condition(),
        Action(1, measure=UsageMeasure.VOICE_MINUTES, per_quantity=10.0),
    )
    assert program_rules.usage_points(data, MonthlyUsage(data_mb=2_999, voice_minutes=0), BRONZE) == 20
    assert program_rules.usage_points(data, MonthlyUsage(data_mb=90_000, voice_minutes=0), BRONZE) == 200
    assert program_rules.usage_points(voice, MonthlyUsage(data_mb=0, voice_minutes=129.5), BRONZE) == 12


def test_a_campaign_applies_only_in_its_window_segments_and_regions():
    campaign = EarningRule(
        "winter",
        "Winter",
        Trigger.PAYMENT_RECEIVED,
        Condition(
            start_time=NOW,
            end_time=NOW + timedelta(days=30),
            segments=("segments/churn-risk-high",),
            regions=("Toshkent",),
            currency_code="UZS",
        ),
        Action(points=2, per_amount=Money("UZS", Decimal(1000))),
    )
    at_risk = CustomerFacts(frozenset({"segments/churn-risk-high"}), frozenset({"toshkent"}))
    assert program_rules.applies(campaign, at_risk, NOW + timedelta(days=1))
    assert not program_rules.applies(campaign, at_risk, NOW - timedelta(seconds=1))
    assert not program_rules.applies(campaign, at_risk, NOW + timedelta(days=30))
    assert not program_rules.applies(campaign, replace(at_risk, segments=frozenset()), NOW)
    assert not program_rules.applies(campaign, replace(at_risk, regions=frozenset({"Samarqand"})), NOW)


def test_tenure_points_per_year_and_anniversaries_of_leap_days():
    rule = next(r for r in DEFAULT_PROGRAM.earning_rules if r.trigger is Trigger.TENURE_ANNIVERSARY)
    assert program_rules.tenure_points(rule, 3, BRONZE) == 750
    assert program_rules.tenure_points(rule, 40, BRONZE) == 2_500
    assert program_rules.completed_years(date(2020, 2, 29), date(2026, 2, 28)) == 5
    assert program_rules.completed_years(date(2020, 2, 29), date(2026, 3, 1)) == 6
    assert program_rules.anniversary(date(2020, 2, 29), 6) == date(2026, 2, 28)


@given(st.integers(0, 20_000))
def test_the_qualified_tier_is_the_highest_whose_threshold_is_reached(points: int):
    tier = DEFAULT_PROGRAM.qualified_tier(points)
    assert tier.qualifying_points <= points
    upper = DEFAULT_PROGRAM.next_tier(tier.id)
    assert upper is None or upper.qualifying_points > points


def test_an_unknown_tier_counts_as_the_lowest():
    assert DEFAULT_PROGRAM.tier("diamond").id == "bronze"
    assert DEFAULT_PROGRAM.rank("") == 0


def test_a_reward_is_eligible_by_tier_segment_and_dates():
    reward = rewards.Reward(
        id="galaxy",
        display_name="Galaxy",
        kind=rewards.RewardKind.HANDSET,
        points_price=9000,
        start_time=NOW,
        end_time=NOW + timedelta(days=10),
        eligible_tiers=("gold",),
        eligible_segments=("segments/value-vip",),
    )
    vip = frozenset({"segments/value-vip"})
    assert rewards.ineligibility(reward, tier="gold", segments=vip, now=NOW) is None
    assert rewards.ineligibility(reward, tier="silver", segments=vip, now=NOW) == "NOT_ELIGIBLE"
    assert rewards.ineligibility(reward, tier="gold", segments=frozenset(), now=NOW) == "NOT_ELIGIBLE"
    assert (
        rewards.ineligibility(reward, tier="gold", segments=vip, now=NOW + timedelta(days=10)) == "REWARD_NOT_AVAILABLE"
    )
    with pytest.raises(FailedPrecondition) as raised:
        rewards.require_self_service(reward)
    assert raised.value.reason == "REDEEMED_AT_PARTNER"


def test_a_capture_counts_as_redeemed_and_its_reversal_takes_that_back():
    account = ledger.Account(id=uuid.uuid4(), balance=100)
    held, hold = ledger.post(account, ledger.reservation_hold(60, account.id, "hold"), actor="shop", now=NOW)
    captured, capture = ledger.post(
        held, ledger.reservation_capture(60, account.id, "handed over"), actor="shop", now=NOW
    )
    assert (captured.balance, captured.reserved, captured.lifetime_redeemed) == (40, 0, 60)
    undone, _ = ledger.post(captured, ledger.reversal(capture, already_reversed=False), actor="shop", now=NOW)
    assert (undone.balance, undone.lifetime_redeemed) == (100, 0)
    with pytest.raises(FailedPrecondition) as raised:
        ledger.reversal(hold, already_reversed=False)
    assert raised.value.reason == "NOT_REVERSIBLE"


def test_draws_take_the_soonest_lapsing_lots_first():
    lots = [
        ledger.Lot(3, NOW + timedelta(days=3), 50),
        ledger.Lot(1, NOW + timedelta(days=1), 20),
        ledger.Lot(2, NOW + timedelta(days=2), 40),
    ]
    assert ledger.plan_draws(lots, 70) == [(1, 20), (2, 40), (3, 10)]
    assert ledger.plan_draws(lots, 70, first=3) == [(3, 50), (1, 20)]
