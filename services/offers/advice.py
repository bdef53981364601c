"""Honest tariff advice for a line, in words an agent can read to the customer: every plan the line
may take costed on its own months of usage, the cheapest first; the current plan's cost, the
recommended plan's cost and the saving; promoted plans labelled with what they cost more; a line
without usage told so instead of guessed at."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from services.offers.catalog import Offering
from services.offers.costing import MonthUsage
from services.offers.eligibility import CoverageMap, Ineligibility, LineContext, ineligibility
from services.offers.money import Money, zero
from services.offers.ranking import CostedPlan, cost_plan, rank_plans


class Outcome(StrEnum):
    """What the advice concluded."""

    SWITCH = "SWITCH"
    STAY = "STAY"
    NO_USAGE = "NO_USAGE"


@dataclass(frozen=True)
class Advice:
    """The advice for one line."""

    outcome: Outcome
    current_plan: str
    current: CostedPlan | None
    """The current plan costed on the usage (None without usage)."""
    options: list[CostedPlan]
    """Every plan the line may take, cheapest first."""
    ineligible: list[tuple[Offering, Ineligibility]]
    months: tuple[date, ...]
    usage_summary: str
    explanation: str
    usage: tuple[MonthUsage, ...] = ()
    """The months costed."""

    @property
    def recommended(self) -> CostedPlan | None:
        """The cheapest plan the line may take."""
        return self.options[0] if self.options else None

    @property
    def monthly_saving(self) -> Money | None:
        """What the recommendation saves a month against the current plan (never below zero)."""
        if self.current is None or self.recommended is None:
            return None
        saving = self.current.expected_monthly_cost - self.recommended.expected_monthly_cost
        return saving if saving.minor > 0 else zero(saving.currency)

    def extra_cost(self, option: CostedPlan) -> Money:
        """What `option` costs a month more than the recommendation."""
        if self.recommended is None:
            return zero(option.plan.currency)
        return option.expected_monthly_cost - self.recommended.expected_monthly_cost


def months_to_cost(usage: Sequence[MonthUsage], today: date) -> list[MonthUsage]:
    """The months advice is based on, newest first: the complete ones, or the current month while it
    is the only one with use."""
    complete = [month for month in usage if (month.month.year, month.month.month) != (today.year, today.month)]
    return complete or list(usage)


def advise(
    current: Offering,
    plans: Sequence[Offering],
    line: LineContext,
    coverage: CoverageMap,
    now: datetime,
) -> Advice:
    """The advice for a line on `current`, among the market's `plans`, on the line's usage."""
    months = tuple(month.month for month in line.usage)
    if not line.usage:
        return Advice(
            Outcome.NO_USAGE,
            current.name,
            None,
            [],
            [],
            (),
            "The line has no usage yet.",
            "The line has no usage yet, so no plan can be recommended from it; ask again after a month of use.",
        )
    eligible, ineligible = [], []
    for plan in plans:
        reason = ineligibility(plan, line, coverage, now)
        if reason is None:
            eligible.append(plan)
        else:
            ineligible.append((plan, reason))
    options = rank_plans(eligible, line.usage, current.name)
    current_costed = next((o for o in options if o.plan.name == current.name), None) or cost_plan(current, line.usage)
    draft = Advice(Outcome.STAY, current.name, current_costed, options, ineligible, months, "", "")
    recommended = draft.recommended
    outcome = Outcome.SWITCH if recommended is not None and recommended.plan.name != current.name else Outcome.STAY
    return Advice(
        outcome,
        current.name,
        current_costed,
        options,
        ineligible,
        months,
        usage_summary(line.usage),
        _explanation(outcome, current_costed, draft),
        tuple(line.usage),
    )


def usage_summary(usage: Sequence[MonthUsage]) -> str:
    """The usage the costs rest on, as a month's average."""
    count = len(usage)

    def average(item: str) -> int:
        return round(sum(month.whole(item) for month in usage) / count)

    span = f"{usage[-1].month:%B %Y} to {usage[0].month:%B %Y}" if count > 1 else f"{usage[0].month:%B %Y}"
    return (
        f"Over {count} month{'s' if count > 1 else ''} ({span}) the line used on average "
        f"{average('on_net_minutes')} on-net and {average('off_net_minutes')} off-net minutes, "
        f"{average('sms')} text messages and {average('data_mb')} MB of data a month, "
        f"on {average('active_days')} days a month."
    )


def option_words(option: CostedPlan, extra: Money) -> str:
    """One option in words: its average month, what of it is overage, and a promotion's label."""
    expected = option.expected_monthly_cost
    overage = Money(sum(month.overage.minor for month in option.months), expected.currency).mean_of(len(option.months))
    words = f"{option.plan.display_name}: {expected.words()} a month on average"
    words += (
        ", everything used is included"
        if option.covers_usage
        else f", of which {overage.words()} is for usage beyond the allowances"
    )
    if option.plan.promoted:
        words += f". Promoted by the operator: it costs {extra.words()} a month more than the recommended plan"
    return words + "."


def _explanation(outcome: Outcome, current: CostedPlan, advice: Advice) -> str:
    recommended = advice.recommended
    if recommended is None:
        return (
            f"No plan on sale can be offered to this line; it stays on {current.plan.display_name} at "
            f"{current.expected_monthly_cost.words()} a month."
        )
    months = len(recommended.months)
    basis = f"On the line's own usage of the last {months} month{'s' if months > 1 else ''}"
    if outcome is Outcome.STAY:
        others = advice.options[1:]
        following = (
            f" The next cheapest, {others[0].plan.display_name}, would cost {others[0].expected_monthly_cost.words()}."
            if others
            else ""
        )
        return (
            f"{basis}, the current plan {current.plan.display_name} is already the cheapest at "
            f"{current.expected_monthly_cost.words()} a month.{following}"
        )
    difference = current.expected_monthly_cost - recommended.expected_monthly_cost
    if difference.minor > 0:
        gain = f"a saving of {difference.words()} a month"
    else:
        dearer = recommended.expected_monthly_cost - current.expected_monthly_cost
        gain = f"{dearer.words()} a month more, as the current plan cannot be kept"
    covered = (
        "It includes everything the line used."
        if recommended.covers_usage
        else "It is the cheapest even with the usage beyond its allowances."
    )
    return (
        f"{basis}, {recommended.plan.display_name} would cost {recommended.expected_monthly_cost.words()} a month "
        f"instead of {current.expected_monthly_cost.words()} on {current.plan.display_name}: {gain}. {covered}"
    )
