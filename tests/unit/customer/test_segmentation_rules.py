"""Explainable segmentation: which segments a customer is in, by which rule and on which values; the
churn-risk score; and the thresholds, which are data: changing one in the config changes who is in a
segment, with no change to the rules."""

import json
import math
import re
from dataclasses import fields, replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chassis.errors import Aborted, InvalidArgument
from services.customer.customers.lifecycle import ChurnReason, CustomerStatus
from services.customer.customers.profile import OrganizationKind
from services.customer.segments.catalogue import (
    Dimension,
    describe_segment,
    dimension_of,
    is_segment_id,
    listed_segments,
    region_slug,
)
from services.customer.segments.config import (
    UPDATABLE_CONFIG_FIELDS,
    SegmentationConfig,
    apply_config_update,
    check_config_version,
    validate_config,
)
from services.customer.segments.rules import (
    Evaluation,
    Evidence,
    Membership,
    MonthTotals,
    SegmentInputs,
    churn_risk,
    evaluate,
    membership_change,
)

TODAY = date(2024, 6, 15)
DEFAULTS = SegmentationConfig()
LONG_AGO = date(2015, 3, 1)
STEADY_MONTH = MonthTotals(date(2024, 5, 1), voice_minutes=300, on_net_minutes=100, data_mb=3000)


def _inputs(**changes: object) -> SegmentInputs:
    """A steady, long-standing individual without debt, whose usage puts them in no usage segment."""
    inputs = SegmentInputs(
        is_individual=True,
        organization_kind=None,
        status=CustomerStatus.ACTIVE,
        churn_reason=None,
        birth_date=None,
        region="",
        first_activation=LONG_AGO,
        average_monthly_spend=Decimal("150000.00"),
        days_overdue=0,
        late_payment_count=0,
        months=(STEADY_MONTH, replace(STEADY_MONTH, month=date(2024, 4, 1))),
    )
    return replace(inputs, **changes)


def _evaluate(
    inputs: SegmentInputs, config: SegmentationConfig = DEFAULTS, *, vip_spend_threshold: Decimal | None = None
) -> Evaluation:
    return evaluate(inputs, config, vip_spend_threshold=vip_spend_threshold, today=TODAY)


def _segments(inputs: SegmentInputs, config: SegmentationConfig = DEFAULTS, **options: Decimal | None) -> set[str]:
    return {m.segment for m in _evaluate(inputs, config, **options).memberships}


def _membership(evaluation: Evaluation, segment: str) -> Membership:
    [found] = [m for m in evaluation.memberships if m.segment == segment]
    return found


def _segments_starting(inputs: SegmentInputs, prefix: str, config: SegmentationConfig = DEFAULTS) -> list[str]:
    return [s for s in _segments(inputs, config) if s.startswith(prefix)]


def _factor(inputs: SegmentInputs, name: str, config: SegmentationConfig = DEFAULTS) -> Evidence | None:
    _, factors = churn_risk(inputs, config, TODAY)
    return next((f for f in factors if f.factor == name), None)


def _usage(
    month: date = date(2024, 5, 1),
    *,
    voice_minutes: float = 0.0,
    on_net_minutes: float = 0.0,
    data_mb: float = 0.0,
    roaming_days: int = 0,
) -> tuple[MonthTotals, ...]:
    """One month of usage, as the newest."""
    return (MonthTotals(month, voice_minutes, on_net_minutes, data_mb, roaming_days),)


def _config_violations(config: SegmentationConfig) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        validate_config(config)
    return [v.field for v in raised.value.violations]


def _update_violations(patch: SegmentationConfig, paths: list[str]) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        apply_config_update(DEFAULTS, patch, paths)
    return [v.field for v in raised.value.violations]


# Customer type -------------------------------------------------------------------------------------


def test_individual_is_a_consumer() -> None:
    evaluation = _evaluate(_inputs())
    assert _membership(evaluation, "type-consumer").evidence == (Evidence("party", "individual"),)


@pytest.mark.parametrize(
    ("kind", "segment"),
    [
        (OrganizationKind.HOUSEHOLD, "type-household"),
        (OrganizationKind.GOVERNMENT, "type-government"),
        (OrganizationKind.ENTERPRISE, "type-business"),
        (OrganizationKind.SME, "type-business"),
    ],
)
def test_organization_kind_decides_the_customer_type(kind: OrganizationKind, segment: str) -> None:
    inputs = _inputs(is_individual=False, organization_kind=kind)
    assert _segments_starting(inputs, "type-") == [segment]
    assert _membership(_evaluate(inputs), segment).evidence == (Evidence("party", kind.value),)


# Value (VIP) ---------------------------------------------------------------------------------------


def test_spend_at_the_vip_threshold_makes_a_vip() -> None:
    inputs = _inputs(average_monthly_spend=Decimal("500000.00"))
    assert "value-vip" in _segments(inputs, vip_spend_threshold=Decimal("500000.00"))


def test_spend_below_the_vip_threshold_is_not_vip() -> None:
    inputs = _inputs(average_monthly_spend=Decimal("499999.99"))
    assert "value-vip" not in _segments(inputs, vip_spend_threshold=Decimal("500000.00"))


def test_nobody_is_vip_while_there_is_no_vip_threshold() -> None:
    inputs = _inputs(average_monthly_spend=Decimal("99999999.00"))
    assert "value-vip" not in _segments(inputs, vip_spend_threshold=None)


def test_customer_who_spends_nothing_is_not_vip_even_at_a_zero_threshold() -> None:
    inputs = _inputs(average_monthly_spend=Decimal("0.00"))
    assert "value-vip" not in _segments(inputs, vip_spend_threshold=Decimal(0))


def test_vip_evidence_names_the_spend_the_threshold_and_the_top_share() -> None:
    inputs = _inputs(average_monthly_spend=Decimal("750000.00"))
    vip = _membership(_evaluate(inputs, vip_spend_threshold=Decimal("500000.00")), "value-vip")
    assert vip.rule == "value.top_share"
    assert Evidence("average_monthly_spend", "750000.00", "500000.00") in vip.evidence
    assert Evidence("vip_top_share", "0.05") in vip.evidence


# Debtor --------------------------------------------------------------------------------------------


def test_customer_overdue_for_the_configured_days_is_a_debtor_by_overdue_rule() -> None:
    debtor = _membership(_evaluate(_inputs(days_overdue=30)), "debtor")
    assert debtor.rule == "debtor.overdue"
    assert debtor.evidence == (Evidence("days_overdue", "30", "30"),)


def test_customer_often_late_is_a_debtor_by_frequently_late_rule() -> None:
    debtor = _membership(_evaluate(_inputs(late_payment_count=3)), "debtor")
    assert debtor.rule == "debtor.frequently_late"
    assert debtor.evidence == (Evidence("late_payments_12m", "3", "3"),)


def test_customer_below_both_debtor_thresholds_is_not_a_debtor() -> None:
    assert "debtor" not in _segments(_inputs(days_overdue=29, late_payment_count=2))


def test_debtor_on_both_counts_is_reported_by_overdue_rule_with_both_evidences() -> None:
    debtor = _membership(_evaluate(_inputs(days_overdue=45, late_payment_count=4)), "debtor")
    assert debtor.rule == "debtor.overdue"
    assert [e.factor for e in debtor.evidence] == ["days_overdue", "late_payments_12m"]


def test_lowering_the_overdue_threshold_makes_a_debtor_of_the_same_customer() -> None:
    inputs = _inputs(days_overdue=10)
    assert "debtor" not in _segments(inputs)
    assert "debtor" in _segments(inputs, replace(DEFAULTS, debtor_min_days_overdue=10))


def test_raising_the_late_payment_threshold_takes_the_same_customer_out_of_debtors() -> None:
    inputs = _inputs(late_payment_count=3)
    assert "debtor" in _segments(inputs)
    assert "debtor" not in _segments(inputs, replace(DEFAULTS, debtor_min_late_payments=4))


# Churned to a competitor ---------------------------------------------------------------------------


def test_customer_who_ported_out_is_churned_to_competitor() -> None:
    inputs = _inputs(status=CustomerStatus.CHURNED, churn_reason=ChurnReason.PORTED_TO_COMPETITOR)
    ported = _membership(_evaluate(inputs), "churned-to-competitor")
    assert ported.rule == "status.ported"
    assert ported.evidence


@pytest.mark.parametrize("reason", [r for r in ChurnReason if r is not ChurnReason.PORTED_TO_COMPETITOR])
def test_customer_who_left_for_another_reason_is_not_churned_to_competitor(reason: ChurnReason) -> None:
    inputs = _inputs(status=CustomerStatus.CHURNED, churn_reason=reason)
    assert "churned-to-competitor" not in _segments(inputs)


@pytest.mark.parametrize("status", [s for s in CustomerStatus if s is not CustomerStatus.CHURNED])
def test_customer_who_has_not_churned_is_not_churned_to_competitor(status: CustomerStatus) -> None:
    inputs = _inputs(status=status, churn_reason=ChurnReason.PORTED_TO_COMPETITOR)
    assert "churned-to-competitor" not in _segments(inputs)


# Churn risk: the score -----------------------------------------------------------------------------


def test_steady_long_standing_customer_without_debt_has_no_churn_risk() -> None:
    assert churn_risk(_inputs(), DEFAULTS, TODAY) == (0.0, [])


def test_latest_month_well_below_the_earlier_average_is_falling_usage_weighted_by_the_drop() -> None:
    months = (
        MonthTotals(date(2024, 5, 1), data_mb=100),
        MonthTotals(date(2024, 4, 1), data_mb=800, voice_minutes=200),
        MonthTotals(date(2024, 3, 1), data_mb=1000),
    )
    factor = _factor(_inputs(months=months), "falling_usage")
    assert factor is not None
    assert factor.value == "100 vs 1000"
    assert factor.threshold == "0.6"
    assert factor.contribution == pytest.approx(0.4 * 0.9)


def test_latest_month_at_the_falling_usage_ratio_is_not_falling_usage() -> None:
    months = (MonthTotals(date(2024, 5, 1), data_mb=600), MonthTotals(date(2024, 4, 1), data_mb=1000))
    assert _factor(_inputs(months=months), "falling_usage") is None


def test_one_month_of_usage_cannot_show_falling_usage() -> None:
    assert _factor(_inputs(months=_usage(data_mb=0)), "falling_usage") is None


def test_usage_rising_from_nothing_is_not_falling_usage() -> None:
    months = (MonthTotals(date(2024, 5, 1), data_mb=0), MonthTotals(date(2024, 4, 1), data_mb=0))
    assert _factor(_inputs(months=months), "falling_usage") is None


def test_raising_the_falling_usage_ratio_counts_a_smaller_drop_as_falling_usage() -> None:
    months = (MonthTotals(date(2024, 5, 1), data_mb=800), MonthTotals(date(2024, 4, 1), data_mb=1000))
    assert _factor(_inputs(months=months), "falling_usage") is None
    factor = _factor(_inputs(months=months), "falling_usage", replace(DEFAULTS, falling_usage_ratio=0.9))
    assert factor is not None
    assert factor.contribution == pytest.approx(0.4 * 0.2)


def test_customer_activated_this_month_gets_the_full_short_tenure_weight() -> None:
    factor = _factor(_inputs(first_activation=date(2024, 6, 1)), "short_tenure")
    assert factor is not None
    assert factor.value == "0 months"
    assert factor.contribution == pytest.approx(0.25)


def test_short_tenure_contribution_shrinks_as_tenure_grows() -> None:
    contributions = []
    for activation in (date(2024, 6, 1), date(2024, 4, 15), date(2024, 2, 15), date(2024, 1, 15)):
        factor = _factor(_inputs(first_activation=activation), "short_tenure")
        assert factor is not None
        contributions.append(factor.contribution)
    assert contributions == pytest.approx([0.25, 0.25 * 4 / 6, 0.25 * 2 / 6, 0.25 * 1 / 6], abs=1e-4)


def test_customer_of_six_months_no_longer_has_short_tenure() -> None:
    assert _factor(_inputs(first_activation=date(2023, 12, 15)), "short_tenure") is None


def test_raising_short_tenure_months_makes_a_longer_tenure_short() -> None:
    inputs = _inputs(first_activation=date(2023, 12, 15))
    factor = _factor(inputs, "short_tenure", replace(DEFAULTS, short_tenure_months=12))
    assert factor is not None
    assert factor.contribution == pytest.approx(0.25 * 6 / 12, abs=1e-4)


@pytest.mark.parametrize(("days_overdue", "share"), [(9, 0.1), (45, 0.5), (90, 1.0), (400, 1.0)])
def test_debt_contribution_grows_with_days_overdue_up_to_ninety(days_overdue: int, share: float) -> None:
    factor = _factor(_inputs(days_overdue=days_overdue), "debt")
    assert factor is not None
    assert factor.contribution == pytest.approx(0.35 * share)


def test_customer_without_overdue_debt_has_no_debt_factor() -> None:
    assert _factor(_inputs(days_overdue=0), "debt") is None


def test_churn_score_is_the_sum_of_the_factor_contributions() -> None:
    inputs = _inputs(first_activation=date(2024, 3, 15), days_overdue=45)
    score, factors = churn_risk(inputs, DEFAULTS, TODAY)
    assert [f.factor for f in factors] == ["short_tenure", "debt"]
    assert score == pytest.approx(0.25 * 3 / 6 + 0.35 * 0.5, abs=1e-4)


def test_churn_score_is_capped_at_one() -> None:
    heavy = replace(DEFAULTS, churn_weight_falling_usage=1.0, churn_weight_short_tenure=1.0, churn_weight_debt=1.0)
    months = (MonthTotals(date(2024, 5, 1)), MonthTotals(date(2024, 4, 1), data_mb=5000))
    inputs = _inputs(months=months, first_activation=date(2024, 6, 1), days_overdue=120)
    score, _ = churn_risk(inputs, heavy, TODAY)
    assert score == 1.0


# Churn risk: the segment ---------------------------------------------------------------------------


def _at_risk() -> SegmentInputs:
    """New, using far less than before, and 90 days overdue: score 0.25 + 0.4 + 0.35 = 1."""
    months = (MonthTotals(date(2024, 5, 1)), MonthTotals(date(2024, 4, 1), data_mb=5000))
    return _inputs(months=months, first_activation=date(2024, 6, 1), days_overdue=90)


def test_customer_scoring_at_least_the_threshold_is_at_high_churn_risk_with_the_factors_as_evidence() -> None:
    evaluation = _evaluate(_at_risk())
    risk = _membership(evaluation, "churn-risk-high")
    assert risk.rule == "churn.score"
    assert risk.evidence[0] == Evidence("churn_risk_score", "1.00", "0.5")
    assert list(risk.evidence[1:]) == evaluation.churn_factors
    assert {e.factor for e in risk.evidence[1:]} == {"falling_usage", "short_tenure", "debt"}


def test_churn_score_of_the_evaluation_matches_churn_risk() -> None:
    inputs = _inputs(days_overdue=45)
    evaluation = _evaluate(inputs)
    assert (evaluation.churn_risk_score, evaluation.churn_factors) == churn_risk(inputs, DEFAULTS, TODAY)


def test_customer_scoring_below_the_threshold_is_not_at_high_churn_risk() -> None:
    inputs = _inputs(days_overdue=45)  # 0.175
    assert "churn-risk-high" not in _segments(inputs)


def test_lowering_the_churn_threshold_puts_the_same_customer_at_high_risk() -> None:
    inputs = _inputs(days_overdue=45)  # 0.175
    assert "churn-risk-high" in _segments(inputs, replace(DEFAULTS, churn_high_threshold=0.15))


def test_score_exactly_at_the_churn_threshold_is_high_risk() -> None:
    inputs = _inputs(days_overdue=90)  # 0.35
    assert "churn-risk-high" in _segments(inputs, replace(DEFAULTS, churn_high_threshold=0.35))


def test_customer_who_already_churned_is_not_at_churn_risk() -> None:
    inputs = replace(_at_risk(), status=CustomerStatus.CHURNED, churn_reason=ChurnReason.NON_PAYMENT)
    assert "churn-risk-high" not in _segments(inputs)


# Usage ---------------------------------------------------------------------------------------------


def test_data_heavy_customer_is_named_with_the_data_used_and_the_month() -> None:
    inputs = _inputs(months=_usage(date(2024, 5, 1), data_mb=12000))
    heavy = _membership(_evaluate(inputs), "usage-data-heavy")
    assert heavy.rule == "usage.data"
    assert heavy.evidence == (Evidence("data_mb", "12000", "10000.0"), Evidence("month", "2024-05"))


def test_data_just_below_the_threshold_is_not_data_heavy() -> None:
    assert "usage-data-heavy" not in _segments(_inputs(months=_usage(data_mb=9999.9)))


def test_lowering_the_data_threshold_makes_the_same_customer_data_heavy() -> None:
    inputs = _inputs(months=_usage(data_mb=5000))
    assert "usage-data-heavy" not in _segments(inputs)
    assert "usage-data-heavy" in _segments(inputs, replace(DEFAULTS, data_heavy_mb=5000.0))


def test_voice_heavy_customer_is_named_with_the_minutes_and_the_month() -> None:
    heavy = _membership(_evaluate(_inputs(months=_usage(voice_minutes=600))), "usage-voice-heavy")
    assert heavy.rule == "usage.voice"
    assert heavy.evidence == (Evidence("voice_minutes", "600", "600.0"), Evidence("month", "2024-05"))


def test_mostly_on_net_customer_is_named_with_the_on_net_share() -> None:
    inputs = _inputs(months=_usage(voice_minutes=200, on_net_minutes=140))
    on_net = _membership(_evaluate(inputs), "usage-mostly-on-net")
    assert on_net.rule == "usage.on_net"
    assert on_net.evidence == (Evidence("on_net_share", "0.70", "0.7"), Evidence("month", "2024-05"))


def test_customer_calling_mostly_off_net_is_not_mostly_on_net() -> None:
    assert "usage-mostly-on-net" not in _segments(_inputs(months=_usage(voice_minutes=200, on_net_minutes=139)))


def test_customer_without_calls_is_not_mostly_on_net() -> None:
    assert "usage-mostly-on-net" not in _segments(_inputs(months=_usage(data_mb=5000)))


def test_customer_abroad_for_the_configured_days_is_a_roamer() -> None:
    roamer = _membership(_evaluate(_inputs(months=_usage(data_mb=500, roaming_days=3))), "usage-roamer")
    assert roamer.rule == "usage.roaming"
    assert roamer.evidence == (Evidence("roaming_days", "3", "3"), Evidence("month", "2024-05"))


def test_customer_abroad_for_fewer_days_is_not_a_roamer() -> None:
    assert "usage-roamer" not in _segments(_inputs(months=_usage(data_mb=500, roaming_days=2)))


def test_customer_using_less_than_the_configured_units_is_a_low_user() -> None:
    low = _membership(_evaluate(_inputs(months=_usage(data_mb=40, voice_minutes=59))), "usage-low-user")
    assert low.rule == "usage.low"
    assert low.evidence == (Evidence("usage_units", "99", "100.0"), Evidence("month", "2024-05"))


def test_customer_using_exactly_the_configured_units_is_not_a_low_user() -> None:
    assert "usage-low-user" not in _segments(_inputs(months=_usage(data_mb=40, voice_minutes=60)))


def test_usage_segments_come_from_the_newest_month_only() -> None:
    months = (MonthTotals(date(2024, 5, 1), data_mb=3000), MonthTotals(date(2024, 4, 1), data_mb=50000))
    assert _segments_starting(_inputs(months=months), "usage-") == []


def test_customer_without_usage_is_in_no_usage_segment() -> None:
    assert _segments_starting(_inputs(months=()), "usage-") == []


# Tenure and age bands ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_activation", "segment"),
    [
        (date(2024, 1, 1), "tenure-under-1"),
        (date(2023, 6, 16), "tenure-under-1"),
        (date(2023, 6, 15), "tenure-1-3"),
        (date(2020, 6, 15), "tenure-3-5"),
        (date(2019, 6, 16), "tenure-3-5"),
        (date(2019, 6, 15), "tenure-5-10"),
        (date(2014, 6, 15), "tenure-10-plus"),
        (date(2012, 6, 15), "tenure-10-plus"),
    ],
)
def test_tenure_band_follows_the_configured_bounds(first_activation: date, segment: str) -> None:
    assert _segments_starting(_inputs(first_activation=first_activation), "tenure-") == [segment]


def test_tenure_evidence_names_the_whole_years_and_the_bounds() -> None:
    tenure = _membership(_evaluate(_inputs(first_activation=date(2020, 1, 1))), "tenure-3-5")
    assert tenure.rule == "tenure.band"
    assert tenure.evidence == (Evidence("tenure_years", "4", "1,3,5,10"),)


def test_changing_the_tenure_bounds_changes_the_band() -> None:
    inputs = _inputs(first_activation=date(2020, 1, 1))
    assert _segments_starting(inputs, "tenure-", replace(DEFAULTS, tenure_band_years=(2, 6))) == ["tenure-2-6"]


def test_customer_without_activation_has_no_tenure_band() -> None:
    assert _segments_starting(_inputs(first_activation=None), "tenure-") == []


def test_customer_is_not_a_year_older_the_day_before_the_birthday() -> None:
    assert _segments_starting(_inputs(birth_date=date(1999, 6, 16)), "age-") == ["age-under-25"]


def test_customer_is_a_year_older_on_the_birthday() -> None:
    assert _segments_starting(_inputs(birth_date=date(1999, 6, 15)), "age-") == ["age-25-35"]


@pytest.mark.parametrize(
    ("birth_date", "segment"),
    [(date(1980, 1, 1), "age-35-45"), (date(1959, 6, 15), "age-65-plus"), (date(2010, 2, 1), "age-under-25")],
)
def test_age_band_follows_the_configured_bounds(birth_date: date, segment: str) -> None:
    assert _segments_starting(_inputs(birth_date=birth_date), "age-") == [segment]


def test_age_evidence_names_the_whole_years_and_the_bounds() -> None:
    age = _membership(_evaluate(_inputs(birth_date=date(1980, 1, 1))), "age-35-45")
    assert age.rule == "age.band"
    assert age.evidence == (Evidence("age_years", "44", "25,35,45,55,65"),)


def test_changing_the_age_bounds_changes_the_band() -> None:
    inputs = _inputs(birth_date=date(2007, 1, 1))
    assert _segments_starting(inputs, "age-") == ["age-under-25"]
    assert _segments_starting(inputs, "age-", replace(DEFAULTS, age_band_years=(18, 30))) == ["age-under-18"]


def test_customer_without_birth_date_has_no_age_band() -> None:
    assert _segments_starting(_inputs(birth_date=None), "age-") == []


# Region --------------------------------------------------------------------------------------------


def test_region_slug_joins_lower_cased_words_with_dashes() -> None:
    assert region_slug("Toshkent viloyati") == "toshkent-viloyati"


def test_region_slug_drops_vietnamese_diacritics() -> None:
    assert region_slug("Hà Nội") == "ha-noi"


def test_region_slug_drops_uzbek_apostrophes() -> None:
    assert region_slug("Fargʻona viloyati") == "fargona-viloyati"


def test_region_slug_ignores_punctuation_and_extra_space() -> None:
    assert region_slug("  Đà  Nẵng, (city) ") == "da-nang-city"


def test_region_slug_keeps_cyrillic_letters_lower_cased() -> None:
    assert region_slug("Київська область") == "київська-область"


def test_home_region_is_a_segment_with_the_region_as_evidence() -> None:
    region = _membership(_evaluate(_inputs(region="Toshkent viloyati")), "region-toshkent-viloyati")
    assert region.rule == "region.home"
    assert region.evidence == (Evidence("region", "Toshkent viloyati"),)


@pytest.mark.parametrize("region", ["", "  ", "—"])
def test_customer_without_a_region_is_in_no_region_segment(region: str) -> None:
    assert _segments_starting(_inputs(region=region), "region-") == []


# Every membership is explained ---------------------------------------------------------------------

_month_totals = st.builds(
    MonthTotals,
    month=st.dates(min_value=date(2023, 1, 1), max_value=date(2024, 6, 1)).map(lambda d: d.replace(day=1)),
    voice_minutes=st.floats(min_value=0, max_value=5000),
    on_net_minutes=st.floats(min_value=0, max_value=5000),
    data_mb=st.floats(min_value=0, max_value=50000),
    roaming_days=st.integers(min_value=0, max_value=31),
)
_any_inputs = st.builds(
    SegmentInputs,
    is_individual=st.booleans(),
    organization_kind=st.none() | st.sampled_from(OrganizationKind),
    status=st.sampled_from(CustomerStatus),
    churn_reason=st.none() | st.sampled_from(ChurnReason),
    birth_date=st.none() | st.dates(min_value=date(1920, 1, 1), max_value=TODAY),
    region=st.text(max_size=30),
    first_activation=st.none() | st.dates(min_value=date(1995, 1, 1), max_value=TODAY),
    average_monthly_spend=st.decimals(min_value=0, max_value=10**7, places=2),
    days_overdue=st.integers(min_value=0, max_value=1000),
    late_payment_count=st.integers(min_value=0, max_value=50),
    months=st.lists(_month_totals, max_size=6).map(tuple),
)


@given(_any_inputs, st.none() | st.decimals(min_value=0, max_value=10**7, places=2))
def test_every_membership_carries_evidence(inputs: SegmentInputs, vip_spend_threshold: Decimal | None) -> None:
    evaluation = evaluate(inputs, DEFAULTS, vip_spend_threshold=vip_spend_threshold, today=TODAY)
    assert all(m.evidence for m in evaluation.memberships)


@given(_any_inputs)
def test_every_customer_has_exactly_one_customer_type(inputs: SegmentInputs) -> None:
    evaluation = _evaluate(inputs)
    assert len([m for m in evaluation.memberships if m.segment.startswith("type-")]) == 1


@given(_any_inputs)
def test_churn_score_lies_between_zero_and_one(inputs: SegmentInputs) -> None:
    score, _ = churn_risk(inputs, DEFAULTS, TODAY)
    assert 0.0 <= score <= 1.0


# Dimensions and descriptions -----------------------------------------------------------------------

_ascending_bands = st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=6, unique=True).map(
    lambda bands: tuple(sorted(bands))
)


@pytest.mark.parametrize(
    ("segment", "dimension"),
    [
        ("type-consumer", Dimension.CUSTOMER_TYPE),
        ("type-government", Dimension.CUSTOMER_TYPE),
        ("value-vip", Dimension.VALUE),
        ("debtor", Dimension.DEBTOR),
        ("churn-risk-high", Dimension.CHURN_RISK),
        ("churned-to-competitor", Dimension.CHURNED),
        ("usage-mostly-on-net", Dimension.USAGE),
        ("tenure-under-1", Dimension.TENURE),
        ("tenure-10-plus", Dimension.TENURE),
        ("age-25-35", Dimension.AGE),
        ("region-toshkent-viloyati", Dimension.REGION),
    ],
)
def test_each_segment_belongs_to_its_dimension(segment: str, dimension: Dimension) -> None:
    assert dimension_of(segment) is dimension


@pytest.mark.parametrize("segment", ["", "loyal-gold", "type-martian", "age-old", "tenure-", "region-"])
def test_a_segment_no_rule_makes_has_no_dimension(segment: str) -> None:
    with pytest.raises(ValueError, match="no segmentation rule"):
        dimension_of(segment)


@given(_any_inputs, st.none() | st.decimals(min_value=0, max_value=10**7, places=2), _ascending_bands, _ascending_bands)
def test_every_segment_the_rules_make_has_a_dimension_and_a_description(
    inputs: SegmentInputs,
    vip_spend_threshold: Decimal | None,
    tenure_bands: tuple[int, ...],
    age_bands: tuple[int, ...],
) -> None:
    config = replace(DEFAULTS, tenure_band_years=tenure_bands, age_band_years=age_bands)
    evaluation = evaluate(inputs, config, vip_spend_threshold=vip_spend_threshold, today=TODAY)
    for membership in evaluation.memberships:
        assert dimension_of(membership.segment) in Dimension
        assert describe_segment(membership.segment)[:1].isupper()


@pytest.mark.parametrize(
    ("segment", "description"),
    [
        ("age-under-25", "Aged under 25"),
        ("age-25-35", "Aged 25 to 34"),
        ("age-65-plus", "Aged 65 or over"),
        ("age-18-19", "Aged 18"),
    ],
)
def test_an_age_band_is_described_by_the_whole_years_it_covers(segment: str, description: str) -> None:
    assert describe_segment(segment) == description


@pytest.mark.parametrize(
    ("segment", "description"),
    [
        ("tenure-under-1", "Customer for less than 1 year"),
        ("tenure-1-3", "Customer for 1 to 2 years"),
        ("tenure-10-plus", "Customer for 10 years or more"),
        ("tenure-1-2", "Customer for 1 year"),
    ],
)
def test_a_tenure_band_is_described_by_the_whole_years_it_covers(segment: str, description: str) -> None:
    assert describe_segment(segment) == description


@given(st.integers(min_value=0, max_value=110), _ascending_bands)
def test_the_description_of_an_age_band_includes_its_members_age(age: int, bands: tuple[int, ...]) -> None:
    inputs = _inputs(birth_date=TODAY.replace(year=TODAY.year - age))
    [segment] = _segments_starting(inputs, "age-", replace(DEFAULTS, age_band_years=bands))
    described = describe_segment(segment)
    if found := re.fullmatch(r"Aged under (\d+)", described):
        assert age < int(found[1])
    elif found := re.fullmatch(r"Aged (\d+) or over", described):
        assert age >= int(found[1])
    elif found := re.fullmatch(r"Aged (\d+) to (\d+)", described):
        assert int(found[1]) <= age <= int(found[2])
    else:
        assert described == f"Aged {age}"


def test_a_home_region_is_described_with_its_words_capitalised() -> None:
    assert describe_segment("region-toshkent-viloyati") == "Home region: Toshkent Viloyati"


def test_a_fixed_segment_keeps_its_written_description() -> None:
    assert describe_segment("churned-to-competitor") == "Left by porting their number to a competitor"


# Config: validation --------------------------------------------------------------------------------


def test_default_config_is_valid() -> None:
    validate_config(DEFAULTS)


@pytest.mark.parametrize("name", ["vip_top_share", "churn_high_threshold", "falling_usage_ratio", "on_net_share"])
@pytest.mark.parametrize("value", [0.0, -0.1, 1.01, math.nan, math.inf])
def test_share_outside_zero_to_one_is_invalid_argument_on_that_field(name: str, value: float) -> None:
    assert _config_violations(replace(DEFAULTS, **{name: value})) == [f"config.{name}"]


@pytest.mark.parametrize("name", ["vip_top_share", "churn_high_threshold", "falling_usage_ratio", "on_net_share"])
def test_share_of_one_is_valid(name: str) -> None:
    validate_config(replace(DEFAULTS, **{name: 1.0}))


@pytest.mark.parametrize("name", ["churn_weight_falling_usage", "churn_weight_short_tenure", "churn_weight_debt"])
@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan])
def test_weight_outside_zero_to_one_is_invalid_argument_on_that_field(name: str, value: float) -> None:
    assert _config_violations(replace(DEFAULTS, **{name: value})) == [f"config.{name}"]


@pytest.mark.parametrize("name", ["churn_weight_falling_usage", "churn_weight_short_tenure", "churn_weight_debt"])
def test_weight_of_zero_switches_a_factor_off_and_is_valid(name: str) -> None:
    validate_config(replace(DEFAULTS, **{name: 0.0}))


def test_weight_of_zero_removes_that_factor_from_the_score() -> None:
    config = replace(DEFAULTS, churn_weight_debt=0.0)
    score, _ = churn_risk(_inputs(days_overdue=90), config, TODAY)
    assert score == 0.0


@pytest.mark.parametrize(
    "name", ["debtor_min_days_overdue", "debtor_min_late_payments", "short_tenure_months", "roamer_days"]
)
@pytest.mark.parametrize("value", [0, -1])
def test_count_below_one_is_invalid_argument_on_that_field(name: str, value: int) -> None:
    assert _config_violations(replace(DEFAULTS, **{name: value})) == [f"config.{name}"]


@pytest.mark.parametrize("name", ["data_heavy_mb", "voice_heavy_minutes", "low_user_units"])
@pytest.mark.parametrize("value", [0.0, -5.0, math.nan, math.inf])
def test_non_positive_or_non_finite_amount_is_invalid_argument_on_that_field(name: str, value: float) -> None:
    assert _config_violations(replace(DEFAULTS, **{name: value})) == [f"config.{name}"]


@pytest.mark.parametrize("name", ["tenure_band_years", "age_band_years"])
@pytest.mark.parametrize("bands", [(), (5, 3), (1, 3, 3, 5), (0, 1, 3), (-1, 3)])
def test_empty_non_ascending_or_non_positive_bands_are_invalid_argument_on_that_field(
    name: str, bands: tuple[int, ...]
) -> None:
    assert _config_violations(replace(DEFAULTS, **{name: bands})) == [f"config.{name}"]


def test_every_bad_config_field_is_reported_at_once() -> None:
    config = replace(DEFAULTS, vip_top_share=2.0, churn_weight_debt=-1.0, roamer_days=0, age_band_years=())
    assert sorted(_config_violations(config)) == [
        "config.age_band_years",
        "config.churn_weight_debt",
        "config.roamer_days",
        "config.vip_top_share",
    ]


# Config: update ------------------------------------------------------------------------------------


def test_update_changes_only_the_masked_fields() -> None:
    patch = replace(DEFAULTS, debtor_min_days_overdue=10, roamer_days=7, vip_top_share=0.5)
    updated = apply_config_update(DEFAULTS, patch, ["debtor_min_days_overdue", "tenure_band_years"])
    assert updated == replace(DEFAULTS, debtor_min_days_overdue=10)


def test_update_of_bands_replaces_the_bands() -> None:
    patch = replace(DEFAULTS, age_band_years=(18, 30, 60))
    assert apply_config_update(DEFAULTS, patch, ["age_band_years"]).age_band_years == (18, 30, 60)


def test_update_with_an_empty_mask_is_invalid_argument_on_update_mask() -> None:
    assert _update_violations(replace(DEFAULTS, roamer_days=7), []) == ["update_mask"]


@pytest.mark.parametrize("path", ["no_such_field", "config.roamer_days", "ROAMER_DAYS", ""])
def test_update_naming_an_unknown_field_is_invalid_argument_on_update_mask(path: str) -> None:
    assert _update_violations(replace(DEFAULTS, roamer_days=7), ["roamer_days", path]) == ["update_mask"]


def test_update_that_breaks_a_rule_is_invalid_argument_on_that_config_field() -> None:
    assert _update_violations(replace(DEFAULTS, on_net_share=1.5), ["on_net_share"]) == ["config.on_net_share"]


def test_invalid_value_outside_the_mask_is_ignored() -> None:
    patch = replace(DEFAULTS, on_net_share=1.5, roamer_days=7)
    assert apply_config_update(DEFAULTS, patch, ["roamer_days"]).roamer_days == 7


def test_every_config_field_may_be_updated() -> None:
    assert set(UPDATABLE_CONFIG_FIELDS) == {f.name for f in fields(SegmentationConfig)}


def test_an_updated_threshold_changes_membership_with_the_same_rules() -> None:
    inputs = _inputs(late_payment_count=2)
    updated = apply_config_update(DEFAULTS, replace(DEFAULTS, debtor_min_late_payments=2), ["debtor_min_late_payments"])
    assert "debtor" not in _segments(inputs, DEFAULTS)
    assert "debtor" in _segments(inputs, updated)


# Config: stored form -------------------------------------------------------------------------------

_shares = st.floats(min_value=0, max_value=1, exclude_min=True)
_weights = st.floats(min_value=0, max_value=1)
_counts = st.integers(min_value=1, max_value=10_000)
_amounts = st.floats(min_value=0, max_value=1e9, exclude_min=True)
_bands = st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=8, unique=True).map(
    lambda b: tuple(sorted(b))
)
_valid_configs = st.builds(
    SegmentationConfig,
    vip_top_share=_shares,
    debtor_min_days_overdue=_counts,
    debtor_min_late_payments=_counts,
    churn_high_threshold=_shares,
    churn_weight_falling_usage=_weights,
    churn_weight_short_tenure=_weights,
    churn_weight_debt=_weights,
    falling_usage_ratio=_shares,
    short_tenure_months=_counts,
    data_heavy_mb=_amounts,
    voice_heavy_minutes=_amounts,
    on_net_share=_shares,
    roamer_days=_counts,
    low_user_units=_amounts,
    tenure_band_years=_bands,
    age_band_years=_bands,
)


@given(_valid_configs)
def test_generated_configs_are_valid(config: SegmentationConfig) -> None:
    validate_config(config)


@given(_valid_configs)
def test_config_survives_being_stored_as_json(config: SegmentationConfig) -> None:
    assert SegmentationConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_stored_config_keeps_bands_as_lists() -> None:
    stored = DEFAULTS.to_json()
    assert stored["tenure_band_years"] == [1, 3, 5, 10]
    assert stored["age_band_years"] == [25, 35, 45, 55, 65]


def test_stored_config_without_a_field_takes_its_default() -> None:
    assert SegmentationConfig.from_json({"roamer_days": 5}) == replace(DEFAULTS, roamer_days=5)


def test_stored_config_with_an_unknown_field_ignores_it() -> None:
    assert SegmentationConfig.from_json({"retired_threshold": 1, "roamer_days": 5}) == replace(DEFAULTS, roamer_days=5)


# What an evaluation changes --------------------------------------------------------------------------


def test_an_evaluation_enters_new_segments_and_leaves_those_no_rule_gives_any_more() -> None:
    evaluation = Evaluation([Membership("type-consumer", "type.party"), Membership("debtor", "debtor.overdue")])
    change = membership_change(["age-25-35", "type-consumer"], evaluation)
    assert [m.segment for m in change.entered] == ["debtor"]
    assert change.left == ["age-25-35"]


def test_segments_kept_are_neither_entered_nor_left() -> None:
    evaluation = Evaluation([Membership("type-consumer", "type.party")])
    change = membership_change(["type-consumer"], evaluation)
    assert (change.entered, change.left, change.count_changes) == ([], [], {})


def test_member_counts_move_up_for_segments_entered_and_down_for_segments_left() -> None:
    evaluation = Evaluation([Membership("debtor", "debtor.overdue"), Membership("usage-roamer", "usage.roaming")])
    change = membership_change(["churn-risk-high", "usage-roamer"], evaluation)
    assert change.count_changes == {"debtor": 1, "churn-risk-high": -1}


# Listing segments and their names --------------------------------------------------------------------


def test_listing_leaves_out_segments_without_members() -> None:
    assert listed_segments({"debtor": 0, "value-vip": 2}, None) == [("value-vip", 2)]


def test_listing_by_dimension_keeps_only_that_dimension() -> None:
    counts = {"age-25-35": 3, "region-fargona": 1, "age-65-plus": 1}
    assert listed_segments(counts, Dimension.AGE) == [("age-25-35", 3), ("age-65-plus", 1)]


@pytest.mark.parametrize(("text", "valid"), [("value-vip", True), ("age-25-35", True), ("Value", False), ("", False)])
def test_a_segment_id_is_lower_case_letters_digits_and_dashes(text: str, valid: bool) -> None:
    assert is_segment_id(text) is valid


# Config versions -------------------------------------------------------------------------------------


def test_an_update_against_the_stored_version_is_allowed() -> None:
    check_config_version(3, 3)


def test_an_update_without_an_expected_version_is_allowed() -> None:
    check_config_version(None, 3)


def test_an_update_against_an_older_version_is_aborted() -> None:
    with pytest.raises(Aborted) as raised:
        check_config_version(2, 3)
    assert raised.value.reason == "ETAG_MISMATCH"
