"""Plan costing on a month of actual usage: recurring charge by price model, overage item by item,
whole minor units."""

from datetime import date

import pytest

from services.offers.catalog import PriceModel
from services.offers.costing import RECURRING, cost_month
from services.offers.money import Money
from tests.unit.offers.plans import month, plan, som


def test_a_monthly_plan_within_its_allowances_costs_its_price():
    cost = cost_month(plan(price=50_000), month(on_net=120, off_net=30, sms=10, data_mb=2_000))
    assert cost.total == som(50_000)
    assert cost.covered
    assert [c.item for c in cost.charges] == [RECURRING, "on_net_minutes", "off_net_minutes", "sms", "data_mb"]


def test_overage_is_charged_per_unit_beyond_each_allowance():
    cost = cost_month(plan(price=50_000, on_net=100, data_mb=1_000), month(on_net=130, data_mb=1_500))
    charges = {c.item: (c.units, c.amount) for c in cost.charges}
    assert charges["on_net_minutes"] == (30, som(30 * 100))
    assert charges["data_mb"] == (500, som(500 * 10))
    assert cost.total == som(50_000 + 3_000 + 5_000)
    assert not cost.covered


def test_a_started_minute_counts_whole_but_float_noise_does_not():
    priced = plan(on_net=100)
    assert cost_month(priced, month(on_net=100.2)).charges[1].units == 1
    assert cost_month(priced, month(on_net=100.0000001)).charges[1].units == 0


def test_an_unlimited_allowance_never_charges_overage():
    cost = cost_month(plan(data_mb=0, unlimited_data=True), month(data_mb=900_000))
    assert cost.total == som(50_000)
    assert "unlimited" in cost.charges[-1].description


def test_a_per_calendar_day_plan_charges_every_day_of_the_month():
    daily = plan(price=1_500, model=PriceModel.PER_CALENDAR_DAY)
    assert cost_month(daily, month(date(2026, 9, 1), active_days=3)).total == som(30 * 1_500)
    assert cost_month(daily, month(date(2026, 2, 1), active_days=3)).total == som(28 * 1_500)


def test_a_per_day_of_use_plan_charges_only_days_with_activity():
    per_use = plan(price=2_000, model=PriceModel.PER_DAY_OF_USE)
    cost = cost_month(per_use, month(data_mb=300, active_days=4))
    assert cost.total == som(4 * 2_000)
    assert cost.charges[0].units == 4
    assert "days without use cost nothing" in cost.charges[0].description


def test_money_is_whole_minor_units_and_refuses_to_mix_currencies():
    assert Money(4_900_000, "UZS").words() == "49 000 UZS"
    assert Money(1250, "UAH").words() == "12.50 UAH"
    assert Money(150_000, "VND").words() == "150 000 VND"
    assert Money(1001, "UZS").mean_of(2) == Money(501, "UZS")
    with pytest.raises(ValueError):
        _ = Money(1, "UZS") + Money(1, "UAH")
