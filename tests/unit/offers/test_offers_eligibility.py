"""Eligibility by market, region, sale and, for what needs a radio technology, by the coverage of the
areas where the line is used and the technologies its usage was on; and advice for a line without usage."""

from datetime import UTC, datetime

from services.offers.advice import Outcome, advise
from services.offers.catalog import Technology
from services.offers.costing import AreaUse
from services.offers.eligibility import LineContext, ineligibility
from tests.unit.offers.plans import bundle, month, plan

NOW = datetime(2026, 10, 5, tzinfo=UTC)
COVERAGE = {
    "toshkent": frozenset({Technology.G2, Technology.G3, Technology.G4}),
    "qashqadaryo qishloq": frozenset({Technology.G2}),
}
VIDEO = bundle("video-4g", Technology.G4)


def _line(*uses: AreaUse, region: str = "Toshkent") -> LineContext:
    return LineContext(market="UZ", home_region=region, usage=[month(areas=uses)])


def test_a_4g_bundle_is_not_for_a_line_used_on_2g_where_there_is_no_4g():
    village = _line(AreaUse("Qashqadaryo qishloq", Technology.G2, 400))
    why = ineligibility(VIDEO, village, COVERAGE, NOW)
    assert why is not None and why.reason == "NO_COVERAGE"
    assert "Qashqadaryo qishloq" in why.explanation


def test_a_4g_bundle_is_for_a_line_used_on_4g_in_a_covered_city():
    city = _line(AreaUse("TOSHKENT", Technology.G4, 300), AreaUse("Qashqadaryo qishloq", Technology.G2, 20))
    assert ineligibility(VIDEO, city, COVERAGE, NOW) is None


def test_a_line_whose_usage_was_never_on_the_needed_technology_is_not_eligible_even_in_coverage():
    old_phone = _line(AreaUse("Toshkent", Technology.G2, 300))
    why = ineligibility(VIDEO, old_phone, COVERAGE, NOW)
    assert why is not None and why.reason == "TECHNOLOGY_NOT_USED"


def test_an_area_without_coverage_data_counts_as_not_covered():
    unknown = _line(AreaUse("Nukus", Technology.G4, 300))
    why = ineligibility(VIDEO, unknown, COVERAGE, NOW)
    assert why is not None and why.reason == "NO_COVERAGE"


def test_a_plan_sold_in_other_regions_is_not_for_the_line_and_regions_ignore_case_and_diacritics():
    regional = plan("ha-noi-only", regions=("Hà Nội",))
    assert ineligibility(regional, _line(region="ha noi"), COVERAGE, NOW) is None
    why = ineligibility(regional, _line(region="Toshkent"), COVERAGE, NOW)
    assert why is not None and why.reason == "NOT_SOLD_IN_REGION"


def test_a_line_without_usage_is_told_so_instead_of_guessed_at():
    advice = advise(plan("classic"), [plan("lite", price=10_000)], LineContext("UZ", "Toshkent", []), COVERAGE, NOW)
    assert advice.outcome is Outcome.NO_USAGE
    assert advice.options == [] and advice.recommended is None
    assert "no usage yet" in advice.explanation


def test_advice_states_current_and_recommended_cost_and_the_saving_and_labels_a_promoted_plan():
    usage = LineContext("UZ", "Toshkent", [month(on_net=50, data_mb=700)])
    plans = [plan("classic", price=90_000), plan("lite", price=30_000), plan("promo", price=45_000, promoted=True)]
    advice = advise(plans[0], plans, usage, COVERAGE, NOW)
    assert advice.outcome is Outcome.SWITCH
    assert advice.recommended is not None and advice.recommended.plan.offering_id == "lite"
    assert advice.monthly_saving is not None and advice.monthly_saving.words() == "60 000 UZS"
    assert "Lite would cost 30 000 UZS a month instead of 90 000 UZS on Classic" in advice.explanation
    promo = next(o for o in advice.options if o.plan.promoted)
    assert advice.extra_cost(promo).words() == "15 000 UZS"
