"""What a plan costs on one month of a line's actual usage: the recurring price by the plan's price
model (a month, every calendar day, or only the days with use), plus every unit beyond an allowance
at its overage rate, item by item. Started minutes and megabytes count whole. Amounts are whole minor
units; nothing here rounds money."""

import calendar
import math
from dataclasses import dataclass
from datetime import date

from services.offers.catalog import Allowance, Offering, PriceModel, Technology
from services.offers.money import Money, zero


@dataclass(frozen=True)
class AreaUse:
    """Records of a month's use in one area on one radio technology."""

    area: str
    technology: Technology
    records: int


@dataclass(frozen=True)
class MonthUsage:
    """A line's use in one calendar month, as the customer service's usage profile tells it."""

    month: date
    """The month's first day."""
    on_net_minutes: float = 0.0
    off_net_minutes: float = 0.0
    sms: int = 0
    data_mb: float = 0.0
    active_days: int = 0
    areas: tuple[AreaUse, ...] = ()

    def whole(self, item: str) -> int:
        """Units of an item as charged: started minutes and megabytes count whole."""
        value = getattr(self, item)
        # Rounded to a thousandth first, so that 120.0000001 minutes from float sums stay 120.
        return int(value) if isinstance(value, int) else math.ceil(round(value, 3))


@dataclass(frozen=True)
class Charge:
    """One line of a month's bill: what, how many units, at what price."""

    item: str
    units: int
    unit_price: Money
    amount: Money
    description: str


@dataclass(frozen=True)
class MonthCost:
    """What a plan would have cost in one month."""

    month: date
    charges: tuple[Charge, ...]
    total: Money

    @property
    def overage(self) -> Money:
        """The part of the total beyond the recurring price."""
        return sum((c.amount for c in self.charges if c.item != RECURRING), zero(self.total.currency))

    @property
    def covered(self) -> bool:
        """Whether the allowances took every unit used."""
        return all(charge.item == RECURRING or charge.units == 0 for charge in self.charges)


RECURRING = "recurring"
ITEMS = (
    # (usage field, allowance and rate attribute, unit in words)
    ("on_net_minutes", "on_net_minutes", "on_net_minute", "on-net minutes"),
    ("off_net_minutes", "off_net_minutes", "off_net_minute", "off-net minutes"),
    ("sms", "sms", "sms", "text messages"),
    ("data_mb", "data_mb", "data_mb", "MB of data"),
)


def cost_month(plan: Offering, usage: MonthUsage) -> MonthCost:
    """The plan's cost on `usage`: recurring charge first, then overage item by item."""
    charges = [recurring_charge(plan, usage)]
    for usage_item, allowance_item, rate_item, words in ITEMS:
        allowance: Allowance = getattr(plan.allowances, allowance_item)
        used = usage.whole(usage_item)
        beyond = allowance.beyond(used)
        rate = plan.rate(getattr(plan.overage, rate_item))
        charges.append(
            Charge(
                item=usage_item,
                units=beyond,
                unit_price=rate,
                amount=rate.times(beyond),
                description=_overage_words(used, allowance, beyond, rate, words),
            )
        )
    total = sum((charge.amount for charge in charges), zero(plan.currency))
    return MonthCost(usage.month, tuple(charges), total)


def recurring_charge(plan: Offering, usage: MonthUsage) -> Charge:
    """The recurring price of a month under the plan's price model."""
    if plan.price_model is PriceModel.MONTHLY:
        units, words = 1, f"monthly price {plan.price.words()}"
    elif plan.price_model is PriceModel.PER_CALENDAR_DAY:
        units = calendar.monthrange(usage.month.year, usage.month.month)[1]
        words = f"{units} calendar days at {plan.price.words()} a day"
    else:
        units = usage.active_days
        words = f"{units} days of use at {plan.price.words()} a day (days without use cost nothing)"
    return Charge(RECURRING, units, plan.price, plan.price.times(units), words)


def _overage_words(used: int, allowance: Allowance, beyond: int, rate: Money, unit: str) -> str:
    if allowance.unlimited:
        return f"{used} {unit}, unlimited"
    if beyond == 0:
        return f"{used} {unit}, within the {allowance.amount} included"
    return f"{used} {unit}: {beyond} beyond the {allowance.amount} included, at {rate.words()} each"
