"""Ranking plans on a line's own usage, and the two invariants of honest advice as properties: the
first plan is never dearer than any eligible plan, and no plan's cost falls when usage rises."""

from dataclasses import replace
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from services.offers.catalog import Allowance, Allowances, OverageRates, PriceModel
from services.offers.costing import MonthUsage, cost_month
from services.offers.ranking import cheapest_covering_plan, rank_plans
from tests.unit.offers.plans import month, plan, som


def test_a_small_user_on_an_expensive_plan_is_ranked_the_cheapest_covering_plan_first():
    usage = [month(on_net=60, off_net=20, sms=5, data_mb=800)]
    plans = [plan("old-premium", price=120_000), plan("lite", price=30_000, data_mb=1_000), plan("mid", price=60_000)]
    ranked = rank_plans(plans, usage, current_plan="plans/old-premium")
    assert [c.plan.offering_id for c in ranked] == ["lite", "mid", "old-premium"]
    assert ranked[0].covers_usage and ranked[0].expected_monthly_cost == som(30_000)


def test_a_cheap_plan_with_overage_ranks_by_its_full_cost():
    usage = [month(data_mb=3_000)]
    small = plan("small", price=20_000, data_mb=1_000, rates=(100, 200, 50, 20))  # 2000 MB beyond: 40 000 som
    big = plan("big", price=45_000, data_mb=5_000)
    assert [c.plan.offering_id for c in rank_plans([small, big], usage)] == ["big", "small"]


def test_promotion_does_not_move_a_plan_up():
    usage = [month(data_mb=500)]
    ranked = rank_plans([plan("promo", price=70_000, promoted=True), plan("plain", price=40_000)], usage)
    assert [c.plan.offering_id for c in ranked] == ["plain", "promo"]


def test_at_equal_cost_the_current_plan_stays_first():
    usage = [month(data_mb=500)]
    ranked = rank_plans([plan("a", price=40_000), plan("b", price=40_000)], usage, current_plan="plans/b")
    assert ranked[0].plan.offering_id == "b"


def test_a_retired_plans_line_is_proposed_the_cheapest_covering_plan_not_the_cheapest_overall():
    usage = [month(data_mb=4_000)]
    tiny = plan("tiny", price=10_000, data_mb=500, rates=(100, 200, 50, 1))  # 3500 MB at 1 som: 13 500 in all
    covering = plan("covering", price=35_000, data_mb=5_000)
    dearer = plan("dearer", price=50_000, data_mb=10_000)
    proposal = cheapest_covering_plan([dearer, tiny, covering], usage)
    assert proposal is not None and proposal.plan.offering_id == "covering"


def test_the_cheapest_plan_is_proposed_when_none_covers_the_usage():
    usage = [month(data_mb=90_000)]
    proposal = cheapest_covering_plan([plan("a", price=10_000), plan("b", price=90_000)], usage)
    assert proposal is not None and proposal.plan.offering_id == "a"


# Properties ------------------------------------------------------------------------------------

MODELS = st.sampled_from(list(PriceModel))
allowances = st.builds(
    Allowances,
    on_net_minutes=st.builds(Allowance, st.integers(0, 2_000), st.booleans()),
    off_net_minutes=st.builds(Allowance, st.integers(0, 2_000), st.booleans()),
    sms=st.builds(Allowance, st.integers(0, 1_000), st.booleans()),
    data_mb=st.builds(Allowance, st.integers(0, 50_000), st.booleans()),
)
rates = st.builds(
    OverageRates, st.integers(0, 50_000), st.integers(0, 50_000), st.integers(0, 10_000), st.integers(0, 5_000)
)
plans = st.builds(
    lambda index, price, model, allowed, overage: replace(
        plan(f"p{index}", model=model), price=som(price), allowances=allowed, overage=overage
    ),
    st.integers(0, 10_000),
    st.integers(1, 200_000),
    MODELS,
    allowances,
    rates,
)
months = st.builds(
    MonthUsage,
    st.sampled_from([date(2026, m, 1) for m in range(1, 13)]),
    st.floats(0, 3_000, allow_nan=False),
    st.floats(0, 3_000, allow_nan=False),
    st.integers(0, 2_000),
    st.floats(0, 100_000, allow_nan=False),
    st.integers(0, 31),
)


@given(
    st.lists(plans, min_size=1, max_size=8, unique_by=lambda p: p.offering_id), st.lists(months, min_size=1, max_size=6)
)
def test_the_first_recommendation_is_never_dearer_than_any_eligible_plan(candidates, usage):
    ranked = rank_plans(candidates, usage)
    first = ranked[0]
    assert all(first.total <= other.total for other in ranked)
    covering = [c for c in ranked if c.covers_usage]
    assert all(first.total <= c.total for c in covering)


@given(
    plans, months, st.floats(0, 500), st.floats(0, 500), st.integers(0, 300), st.floats(0, 20_000), st.integers(0, 31)
)
def test_a_plans_cost_never_falls_when_usage_rises(priced, usage, on_net, off_net, sms, data_mb, days):
    more = replace(
        usage,
        on_net_minutes=usage.on_net_minutes + on_net,
        off_net_minutes=usage.off_net_minutes + off_net,
        sms=usage.sms + sms,
        data_mb=usage.data_mb + data_mb,
        active_days=min(31, usage.active_days + days),
    )
    assert cost_month(priced, more).total >= cost_month(priced, usage).total
