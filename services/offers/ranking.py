"""Honest ranking of plans on a line's own usage: each plan costed on every month the line was used,
ranked by expected monthly cost and nothing else. A promoted plan keeps its place and is labelled
with what it costs more; the cheapest plan is never pushed down."""

from collections.abc import Sequence
from dataclasses import dataclass

from services.offers.catalog import Offering
from services.offers.costing import MonthCost, MonthUsage, cost_month
from services.offers.money import Money


@dataclass(frozen=True)
class CostedPlan:
    """A plan costed on each month of a line's usage."""

    plan: Offering
    months: tuple[MonthCost, ...]
    total: Money
    """The months' costs added up: plans are compared on this, exactly."""

    @property
    def expected_monthly_cost(self) -> Money:
        """The average month, rounded half up to a minor unit."""
        return self.total.mean_of(len(self.months))

    @property
    def covers_usage(self) -> bool:
        """Whether the allowances took every unit of every month."""
        return all(month.covered for month in self.months)


def cost_plan(plan: Offering, usage: Sequence[MonthUsage]) -> CostedPlan:
    """`plan` costed on every month of `usage` (at least one)."""
    if not usage:
        raise ValueError("a plan is costed on at least one month of usage")
    months = tuple(cost_month(plan, month) for month in usage)
    total = months[0].total
    for month in months[1:]:
        total += month.total
    return CostedPlan(plan, months, total)


def rank_plans(plans: Sequence[Offering], usage: Sequence[MonthUsage], current_plan: str = "") -> list[CostedPlan]:
    """The plans costed on `usage`, cheapest first. At equal cost the current plan comes first (no
    change for nothing), then a plan that covers the usage, then by name; promotion plays no part."""
    costed = [cost_plan(plan, usage) for plan in plans]
    return sorted(costed, key=lambda c: (c.total.minor, c.plan.name != current_plan, not c.covers_usage, c.plan.name))


def cheapest_covering_plan(plans: Sequence[Offering], usage: Sequence[MonthUsage]) -> CostedPlan | None:
    """The cheapest of `plans` whose allowances cover every month of `usage`; the cheapest of all when
    none covers it; None without plans. What a line on a retired plan is proposed."""
    ranked = rank_plans(plans, usage)
    covering = [costed for costed in ranked if costed.covers_usage]
    candidates = covering or ranked
    return candidates[0] if candidates else None
