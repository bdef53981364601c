"""Next-best actions: eligibility, consent, suitability, the contact policy and arbitration, each
action with its reason and every candidate not chosen with why."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.offers.action_rules import ActionKind, ActionRule, ContactPolicy
from services.offers.catalog import Technology
from services.offers.costing import AreaUse
from services.offers.next_best_actions import (
    BASE_PROPENSITY,
    ContactHistory,
    CustomerLine,
    CustomerPicture,
    Decision,
    DecisionInputs,
    TakeUp,
    decide,
    learnt_propensity,
)
from tests.unit.offers.plans import bundle, month, plan

# 12:00 in Tashkent (UTC+5): outside the default quiet hours.
NOON_IN_TASHKENT = datetime(2026, 10, 14, 7, 0, tzinfo=UTC)
CURRENT = plan("uz-classic", price=80_000)
CHEAPER = plan("uz-start", price=40_000)
DEARER = plan("uz-max", price=150_000)
VIDEO = bundle("uz-video", Technology.G4)
DEFAULT_POLICY = ContactPolicy()
OFFERINGS = {o.name: o for o in (CURRENT, CHEAPER, DEARER, VIDEO)}


def rule(rule_id: str, kind: ActionKind = ActionKind.BUNDLE_OFFER, **fields: object) -> ActionRule:
    defaults: dict[str, object] = {
        "offering": "" if kind is ActionKind.SERVICE_MESSAGE else CHEAPER.name,
        "message": f"{rule_id} message",
        "value": 100.0,
    }
    return ActionRule(rule_id=rule_id, display_name=rule_id.title(), kind=kind, **{**defaults, **fields})  # type: ignore[arg-type]


def customer(
    segments: tuple[str, ...] = (), *, consent: bool = True, tier: str = "", usage_on: Technology = Technology.G4
) -> CustomerPicture:
    usage = [month(data_mb=2_000, areas=(AreaUse("Toshkent", usage_on, 100),))]
    return CustomerPicture(
        customer="customers/c",
        segments=frozenset(segments),
        loyalty_tier=tier,
        lines=[CustomerLine(CURRENT, "Toshkent", usage)],
        marketing_permitted=consent,
        consent_words="was granted through APP on 2026-01-02" if consent else "was revoked through WEB on 2026-02-03",
    )


def inputs(
    *rules: ActionRule,
    policy: ContactPolicy = DEFAULT_POLICY,
    offers_this_week: int = 0,
    declines: dict[str, datetime] | None = None,
    take_up: dict[tuple[str, str], TakeUp] | None = None,
) -> DecisionInputs:
    return DecisionInputs(
        rules=rules,
        offerings=OFFERINGS,
        coverage={"toshkent": frozenset({Technology.G2, Technology.G4})},
        policy=policy,
        contacts=ContactHistory(offers_this_week, declines or {}),
        take_up=take_up or {},
    )


def chosen(decision: Decision) -> list[str]:
    return [action.rule.rule_id for action in decision.actions]


def passed(decision: Decision) -> dict[str, str]:
    return {p.rule.rule_id: p.reason for p in decision.passed_over}


def test_no_marketing_action_without_marketing_consent_but_service_messages_pass() -> None:
    offer = rule("bundle")
    notice = rule("plan-retired", ActionKind.SERVICE_MESSAGE)
    decision = decide(customer(consent=False), inputs(offer, notice), "APP", 3, NOON_IN_TASHKENT)
    assert chosen(decision) == ["plan-retired"]
    assert passed(decision) == {"bundle": "NO_MARKETING_CONSENT"}
    assert "revoked" in decision.passed_over[0].explanation


def test_retention_comes_first_for_a_customer_at_high_churn_risk_whatever_its_priority() -> None:
    retention = rule("keep-half-price", ActionKind.RETENTION_OFFER, required_segments=("churn-risk-high",), value=1.0)
    bundle_offer = rule("video", offering=VIDEO.name, value=10_000.0)
    decision = decide(customer(("churn-risk-high",)), inputs(retention, bundle_offer), "APP", 3, NOON_IN_TASHKENT)
    assert chosen(decision) == ["keep-half-price", "video"]
    assert "high risk of leaving" in decision.actions[0].reason
    assert "retention offers first" in decision.arbitration


def test_without_churn_risk_the_higher_priority_wins_and_the_retention_offer_is_not_a_candidate() -> None:
    retention = rule("keep-half-price", ActionKind.RETENTION_OFFER, required_segments=("churn-risk-high",))
    cheap = rule("cheap", value=10.0)
    rich = rule("rich", value=1_000.0)
    decision = decide(customer(), inputs(retention, cheap, rich), "APP", 3, NOON_IN_TASHKENT)
    assert chosen(decision) == ["rich", "cheap"]
    assert passed(decision) == {"keep-half-price": "SEGMENT_REQUIRED"}


def test_arbitration_ranks_by_propensity_times_value_times_weight_and_shows_each_factor() -> None:
    likely = rule("likely", value=100.0, business_weight=1.0)
    weighted = rule("weighted", value=100.0, business_weight=3.0)
    take_up = {("likely", ""): TakeUp(presented=100, accepted=50), ("weighted", ""): TakeUp(presented=100, accepted=5)}
    decision = decide(customer(), inputs(likely, weighted, take_up=take_up), "APP", 3, NOON_IN_TASHKENT)
    first, second = decision.actions
    assert [first.rule.rule_id, second.rule.rule_id] == ["likely", "weighted"]
    assert first.priority == first.propensity.value * 100.0 * 1.0
    assert second.priority == second.propensity.value * 100.0 * 3.0
    assert "x value 100 x weight 3" in second.reason


def test_candidates_beyond_the_number_asked_are_outranked_with_their_priority() -> None:
    decision = decide(
        customer(), inputs(rule("a", value=3.0), rule("b", value=2.0), rule("c", value=1.0)), "WEB", 2, NOON_IN_TASHKENT
    )
    assert chosen(decision) == ["a", "b"]
    assert passed(decision) == {"c": "OUTRANKED"}
    assert decision.passed_over[0].priority > 0


def test_a_debtor_is_not_offered_a_dearer_plan_but_may_be_offered_a_cheaper_one() -> None:
    dearer = rule("upgrade", offering=DEARER.name)
    cheaper = rule("downgrade", offering=CHEAPER.name)
    decision = decide(customer(("debtor",)), inputs(dearer, cheaper), "APP", 3, NOON_IN_TASHKENT)
    assert chosen(decision) == ["downgrade"]
    assert passed(decision) == {"upgrade": "DEARER_PLAN_FOR_DEBTOR"}


def test_a_4g_bundle_is_not_offered_to_a_customer_whose_usage_is_all_on_2g() -> None:
    video = rule("video", offering=VIDEO.name)
    assert chosen(decide(customer(usage_on=Technology.G4), inputs(video), "APP", 3, NOON_IN_TASHKENT)) == ["video"]
    decision = decide(customer(usage_on=Technology.G2), inputs(video), "APP", 3, NOON_IN_TASHKENT)
    assert passed(decision) == {"video": "TECHNOLOGY_NOT_USED"}


def test_loyalty_linked_offers_need_one_of_their_tiers() -> None:
    gold = rule("gold-extra", ActionKind.LOYALTY_OFFER, loyalty_tiers=("gold", "platinum"))
    assert chosen(decide(customer(tier="gold"), inputs(gold), "APP", 3, NOON_IN_TASHKENT)) == ["gold-extra"]
    decision = decide(customer(tier="silver"), inputs(gold), "APP", 3, NOON_IN_TASHKENT)
    assert passed(decision) == {"gold-extra": "LOYALTY_TIER_REQUIRED"}


def test_the_weekly_cap_per_channel_leaves_room_only_for_what_is_left_and_never_blocks_service_messages() -> None:
    policy = ContactPolicy(max_offers_per_week_per_channel=2)
    rules = (rule("a", value=3.0), rule("b", value=2.0), rule("notice", ActionKind.SERVICE_MESSAGE, value=1.0))
    decision = decide(customer(), inputs(*rules, policy=policy, offers_this_week=1), "APP", 3, NOON_IN_TASHKENT)
    assert chosen(decision) == ["a", "notice"]
    assert passed(decision) == {"b": "CONTACT_LIMIT"}


def test_an_offer_declined_within_the_cool_down_is_not_put_again_and_is_after_it() -> None:
    policy = ContactPolicy(decline_cooldown_days=30)
    declined = {"a": NOON_IN_TASHKENT - timedelta(days=10)}
    decision = decide(customer(), inputs(rule("a"), policy=policy, declines=declined), "APP", 3, NOON_IN_TASHKENT)
    assert passed(decision) == {"a": "DECLINE_COOL_DOWN"}
    later = NOON_IN_TASHKENT + timedelta(days=21)
    assert chosen(decide(customer(), inputs(rule("a"), policy=policy, declines=declined), "APP", 3, later)) == ["a"]


def test_quiet_hours_are_counted_in_the_customers_time_zone_and_only_on_their_channels() -> None:
    policy = ContactPolicy(quiet_hours_start_hour=21, quiet_hours_end_hour=9, quiet_hours_channels=("APP",))
    # 17:00 UTC is 22:00 in Tashkent: quiet there, though not yet 21:00 in UTC.
    evening = datetime(2026, 10, 14, 17, 0, tzinfo=UTC)
    decision = decide(customer(), inputs(rule("a"), policy=policy), "APP", 3, evening)
    assert passed(decision) == {"a": "QUIET_HOURS"}
    assert "22:00" in decision.passed_over[0].explanation
    assert chosen(decide(customer(), inputs(rule("a"), policy=policy), "CALL_CENTRE", 3, evening)) == ["a"]


def test_a_rule_for_other_channels_regions_or_markets_is_passed_over_with_its_reason() -> None:
    rules = (
        rule("shop-only", channels=("RETAIL_SHOP",)),
        rule("samarqand", regions=("Samarqand",)),
        rule("ukraine", market="UA"),
    )
    decision = decide(customer(), inputs(*rules), "APP", 3, NOON_IN_TASHKENT)
    assert passed(decision) == {
        "shop-only": "CHANNEL_NOT_ALLOWED",
        "samarqand": "NOT_IN_REGION",
        "ukraine": "OTHER_MARKET",
    }
    assert all(p.explanation for p in decision.passed_over)


def test_propensity_without_history_is_the_base_rate_and_a_segments_history_moves_it_smoothly() -> None:
    assert learnt_propensity("a", frozenset({"usage-data-heavy"}), {}).value == BASE_PROPENSITY
    history = {("a", ""): TakeUp(100, 10), ("a", "usage-data-heavy"): TakeUp(40, 20)}
    learnt = learnt_propensity("a", frozenset({"usage-data-heavy", "value-vip"}), history)
    overall = (10 + 10 * BASE_PROPENSITY) / (100 + 10)
    assert learnt.segment == "usage-data-heavy"
    assert learnt.value == (20 + 10 * overall) / (40 + 10)
    assert "20 accepted" in learnt.explanation and "40 presented" in learnt.explanation


@given(
    presented=st.integers(min_value=0, max_value=10_000),
    share=st.floats(min_value=0, max_value=1),
    more=st.integers(min_value=1, max_value=100),
)
def test_propensity_stays_a_probability_and_never_falls_when_more_presentations_are_accepted(
    presented: int, share: float, more: int
) -> None:
    accepted = int(presented * share)
    base = learnt_propensity("a", frozenset({"s"}), {("a", "s"): TakeUp(presented + more, accepted)})
    better = learnt_propensity("a", frozenset({"s"}), {("a", "s"): TakeUp(presented + more, accepted + more)})
    assert 0 <= base.value <= 1 and 0 <= better.value <= 1
    assert better.value >= base.value


def test_an_inactive_rule_makes_no_candidate() -> None:
    decision = decide(customer(), inputs(replace(rule("a"), active=False)), "APP", 3, NOON_IN_TASHKENT)
    assert passed(decision) == {"a": "RULE_INACTIVE"}
