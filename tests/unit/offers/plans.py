"""Offerings and months of usage for the offers unit tests."""

from dataclasses import replace
from datetime import date

from services.offers.catalog import (
    Allowance,
    Allowances,
    Offering,
    OfferingKind,
    OverageRates,
    PriceModel,
    Technology,
)
from services.offers.costing import AreaUse, MonthUsage
from services.offers.money import Money


def som(amount: int) -> Money:
    """Whole som in tiyin."""
    return Money(amount * 100, "UZS")


def plan(
    offering_id: str = "uz-start",
    *,
    price: int = 50_000,
    model: PriceModel = PriceModel.MONTHLY,
    on_net: int = 300,
    off_net: int = 100,
    sms: int = 100,
    data_mb: int = 5_000,
    unlimited_data: bool = False,
    rates: tuple[int, int, int, int] = (100, 200, 50, 10),
    technology: Technology = Technology.UNSPECIFIED,
    regions: tuple[str, ...] = (),
    promoted: bool = False,
) -> Offering:
    """An Uzbek monthly plan priced in whole som; overage rates in som per unit."""
    return Offering(
        kind=OfferingKind.TARIFF_PLAN,
        offering_id=offering_id,
        display_name=offering_id.replace("-", " ").title(),
        market="UZ",
        price_model=model,
        price=som(price),
        allowances=Allowances(
            on_net_minutes=Allowance(on_net),
            off_net_minutes=Allowance(off_net),
            sms=Allowance(sms),
            data_mb=Allowance(data_mb, unlimited_data),
        ),
        overage=OverageRates(*(rate * 100 for rate in rates)),
        required_technology=technology,
        regions=regions,
        promoted=promoted,
    )


def month(
    first_day: date = date(2026, 9, 1),
    *,
    on_net: float = 0.0,
    off_net: float = 0.0,
    sms: int = 0,
    data_mb: float = 0.0,
    active_days: int = 30,
    areas: tuple[AreaUse, ...] = (),
) -> MonthUsage:
    """A month of a line's usage."""
    return MonthUsage(first_day, on_net, off_net, sms, data_mb, active_days, areas)


def bundle(offering_id: str, technology: Technology) -> Offering:
    """A monthly add-on bundle needing `technology`."""
    return replace(plan(offering_id, price=20_000, technology=technology), kind=OfferingKind.ADD_ON_BUNDLE)
