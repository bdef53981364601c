"""The loyalty program as data: tiers, earning rules (TMF658: event -> condition -> action) and
expiry, with the plain rules that check a program and turn a customer fact into points.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from chassis.errors import Violations

ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MAX_RULES = 200
MAX_TIERS = 10
MIN_MULTIPLIER_PERCENT = 100
MAX_MULTIPLIER_PERCENT = 1000
MAX_RULE_POINTS = 1_000_000
MIN_DURATION = timedelta(seconds=1)
MAX_DURATION = timedelta(days=3660)


class Trigger(StrEnum):
    """The customer fact an earning rule answers."""

    PAYMENT_RECEIVED = "PAYMENT_RECEIVED"
    MONTHLY_USAGE = "MONTHLY_USAGE"
    TENURE_ANNIVERSARY = "TENURE_ANNIVERSARY"
    FIRST_ACTIVATION = "FIRST_ACTIVATION"


class UsageMeasure(StrEnum):
    """What a usage rule counts."""

    DATA_GB = "DATA_GB"
    VOICE_MINUTES = "VOICE_MINUTES"


@dataclass(frozen=True)
class Tier:
    """A level reached by points earned in the qualification window."""

    id: str
    display_name: str
    qualifying_points: int
    earn_multiplier_percent: int = 100


@dataclass(frozen=True)
class Money:
    """An amount in one currency, in minor-unit-free decimal form."""

    currency_code: str
    amount: Decimal


@dataclass(frozen=True)
class Condition:
    """Who and when an earning rule applies to; every given limit must hold."""

    start_time: datetime | None = None
    end_time: datetime | None = None
    segments: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    currency_code: str = ""


@dataclass(frozen=True)
class Action:
    """How many points an earning rule credits."""

    points: int
    per_amount: Money | None = None
    measure: UsageMeasure | None = None
    per_quantity: float = 0.0
    per_tenure_year: bool = False
    max_points: int = 0
    apply_tier_multiplier: bool = False


@dataclass(frozen=True)
class EarningRule:
    """When `trigger` happens to a customer meeting `condition`, `action` credits points."""

    id: str
    display_name: str
    trigger: Trigger
    condition: Condition
    action: Action


@dataclass(frozen=True)
class Program:
    """One version of the program."""

    tiers: tuple[Tier, ...]
    earning_rules: tuple[EarningRule, ...]
    points_validity: timedelta
    qualification_window: timedelta
    tier_review_period: timedelta
    point_value: Money
    version: int = 0
    update_time: datetime | None = None

    @property
    def lowest_tier(self) -> Tier:
        """The tier every account starts in."""
        return self.tiers[0]

    def tier(self, tier_id: str) -> Tier:
        """The tier with this id; the lowest when the id is unknown (a tier removed from the program)."""
        return next((tier for tier in self.tiers if tier.id == tier_id), self.lowest_tier)

    def rank(self, tier_id: str) -> int:
        """Position of a tier from the bottom (0); unknown tiers rank lowest."""
        return next((index for index, tier in enumerate(self.tiers) if tier.id == tier_id), 0)

    def qualified_tier(self, qualifying_points: int) -> Tier:
        """The highest tier the points reach."""
        return [tier for tier in self.tiers if tier.qualifying_points <= qualifying_points][-1]

    def next_tier(self, tier_id: str) -> Tier | None:
        """The tier above, if any."""
        rank = self.rank(tier_id)
        return self.tiers[rank + 1] if rank + 1 < len(self.tiers) else None

    def rules_for(self, trigger: Trigger) -> list[EarningRule]:
        """The rules answering one trigger, in program order."""
        return [rule for rule in self.earning_rules if rule.trigger is trigger]


@dataclass(frozen=True)
class CustomerFacts:
    """What the loyalty service knows of a customer for earning conditions."""

    segments: frozenset[str] = field(default_factory=frozenset)
    regions: frozenset[str] = field(default_factory=frozenset)


def _money(currency: str, amount: str) -> Money:
    return Money(currency, Decimal(amount))


def _payment_rule(currency: str, per: str) -> EarningRule:
    return EarningRule(
        id=f"bill-payments-{currency.lower()}",
        display_name=f"Bill paid: 1 point per {per} {currency}",
        trigger=Trigger.PAYMENT_RECEIVED,
        condition=Condition(currency_code=currency),
        action=Action(points=1, per_amount=_money(currency, per), apply_tier_multiplier=True),
    )


DEFAULT_PROGRAM = Program(
    tiers=(
        Tier("bronze", "Bronze", 0, 100),
        Tier("silver", "Silver", 1_000, 110),
        Tier("gold", "Gold", 3_000, 125),
        Tier("platinum", "Platinum", 8_000, 150),
    ),
    earning_rules=(
        _payment_rule("UZS", "1000"),
        _payment_rule("UAH", "3"),
        _payment_rule("VND", "2000"),
        _payment_rule("RUB", "7"),
        _payment_rule("USD", "1"),
        EarningRule(
            id="data-usage",
            display_name="Mobile data: 10 points per GB, up to 200 a month per line",
            trigger=Trigger.MONTHLY_USAGE,
            condition=Condition(),
            action=Action(points=10, measure=UsageMeasure.DATA_GB, per_quantity=1.0, max_points=200),
        ),
        EarningRule(
            id="voice-usage",
            display_name="Calls: 1 point per 10 minutes, up to 100 a month per line",
            trigger=Trigger.MONTHLY_USAGE,
            condition=Condition(),
            action=Action(points=1, measure=UsageMeasure.VOICE_MINUTES, per_quantity=10.0, max_points=100),
        ),
        EarningRule(
            id="tenure-anniversary",
            display_name="Another year with us: 250 points per year of tenure",
            trigger=Trigger.TENURE_ANNIVERSARY,
            condition=Condition(),
            action=Action(points=250, per_tenure_year=True, max_points=2_500),
        ),
        EarningRule(
            id="first-activation",
            display_name="Welcome: first line in service",
            trigger=Trigger.FIRST_ACTIVATION,
            condition=Condition(),
            action=Action(points=200),
        ),
    ),
    points_validity=timedelta(days=730),
    qualification_window=timedelta(days=365),
    tier_review_period=timedelta(days=365),
    point_value=_money("USD", "0.01"),
)


def check_program(program: Program) -> None:
    """Raises INVALID_ARGUMENT naming every field that makes `program` unusable."""
    violations = Violations()
    _check_tiers(program.tiers, violations)
    rule_ids: set[str] = set()
    if len(program.earning_rules) > MAX_RULES:
        violations.add("program.earning_rules", f"must hold at most {MAX_RULES} rules")
    for index, rule in enumerate(program.earning_rules):
        path = f"program.earning_rules[{index}]"
        if not ID_PATTERN.match(rule.id):
            violations.add(f"{path}.id", "must be lower-case letters, digits and dashes, starting with a letter")
        elif rule.id in rule_ids:
            violations.add(f"{path}.id", f"{rule.id!r} is used by another rule")
        rule_ids.add(rule.id)
        _check_rule(rule, path, violations)
    for name, value in (
        ("points_validity", program.points_validity),
        ("qualification_window", program.qualification_window),
        ("tier_review_period", program.tier_review_period),
    ):
        if not MIN_DURATION <= value <= MAX_DURATION:
            violations.add(f"program.{name}", "must be from 1 second to 3,660 days")
    if program.point_value.amount < 0 or not program.point_value.currency_code:
        violations.add("program.point_value", "must be a non-negative amount with a currency")
    violations.raise_if_any()


def _check_tiers(tiers: tuple[Tier, ...], violations: Violations) -> None:
    if not tiers:
        violations.add("program.tiers", "at least one tier is required")
        return
    if len(tiers) > MAX_TIERS:
        violations.add("program.tiers", f"must hold at most {MAX_TIERS} tiers")
    if tiers[0].qualifying_points != 0:
        violations.add("program.tiers[0].qualifying_points", "the lowest tier must need 0 points")
    seen: set[str] = set()
    for index, tier in enumerate(tiers):
        path = f"program.tiers[{index}]"
        if not ID_PATTERN.match(tier.id):
            violations.add(f"{path}.id", "must be lower-case letters, digits and dashes, starting with a letter")
        elif tier.id in seen:
            violations.add(f"{path}.id", f"{tier.id!r} is used by another tier")
        seen.add(tier.id)
        if not tier.display_name.strip():
            violations.add(f"{path}.display_name", "is required")
        if index > 0 and tier.qualifying_points <= tiers[index - 1].qualifying_points:
            violations.add(f"{path}.qualifying_points", "must be more than the tier below needs")
        if not MIN_MULTIPLIER_PERCENT <= tier.earn_multiplier_percent <= MAX_MULTIPLIER_PERCENT:
            violations.add(f"{path}.earn_multiplier_percent", "must be from 100 to 1000")


def _check_rule(rule: EarningRule, path: str, violations: Violations) -> None:
    action, condition = rule.action, rule.condition
    if not rule.display_name.strip():
        violations.add(f"{path}.display_name", "is required")
    if not 0 < action.points <= MAX_RULE_POINTS:
        violations.add(f"{path}.action.points", f"must be from 1 to {MAX_RULE_POINTS}")
    if action.max_points < 0:
        violations.add(f"{path}.action.max_points", "must not be negative")
    if condition.start_time and condition.end_time and condition.end_time <= condition.start_time:
        violations.add(f"{path}.condition.end_time", "must be after start_time")
    if rule.trigger is Trigger.PAYMENT_RECEIVED:
        if not condition.currency_code:
            violations.add(f"{path}.condition.currency_code", "is required for payment rules")
        if action.per_amount is None or action.per_amount.amount <= 0:
            violations.add(f"{path}.action.per_amount", "must be a positive amount for payment rules")
        elif action.per_amount.currency_code != condition.currency_code:
            violations.add(f"{path}.action.per_amount", "must be in the condition's currency")
    if rule.trigger is Trigger.MONTHLY_USAGE:
        if action.measure is None:
            violations.add(f"{path}.action.measure", "is required for usage rules")
        if not action.per_quantity > 0:
            violations.add(f"{path}.action.per_quantity", "must be positive for usage rules")


def applies(rule: EarningRule, facts: CustomerFacts, at: datetime) -> bool:
    """Whether the rule's condition holds for this customer at the time of the fact."""
    condition = rule.condition
    if condition.start_time and at < condition.start_time:
        return False
    if condition.end_time and at >= condition.end_time:
        return False
    if condition.segments and not facts.segments.intersection(condition.segments):
        return False
    wanted_regions = {region.casefold() for region in condition.regions}
    return not wanted_regions or bool(wanted_regions.intersection(region.casefold() for region in facts.regions))


def with_multiplier(rule: EarningRule, tier: Tier, points: int) -> int:
    """Points after the tier multiplier, when the rule applies it (rounded down)."""
    if not rule.action.apply_tier_multiplier:
        return points
    return points * tier.earn_multiplier_percent // 100


def capped(rule: EarningRule, points: int) -> int:
    """Points limited to the rule's cap, if any."""
    return min(points, rule.action.max_points) if rule.action.max_points else points


def payment_points(rule: EarningRule, paid: Money, tier: Tier) -> int:
    """Points a payment earns: `points` for each whole `per_amount` paid, multiplied, then capped."""
    per = rule.action.per_amount
    if per is None or paid.currency_code != rule.condition.currency_code or paid.amount <= 0:
        return 0
    units = int(paid.amount // per.amount)
    return capped(rule, with_multiplier(rule, tier, units * rule.action.points))


@dataclass(frozen=True)
class MonthlyUsage:
    """A line's usage totals for one month so far."""

    data_mb: float
    voice_minutes: float


def usage_points(rule: EarningRule, usage: MonthlyUsage, tier: Tier) -> int:
    """Points a line's month has earned so far by a usage rule (the month's total, capped); the
    ledger credits the difference to what the month earned before."""
    quantity = usage.data_mb / 1000 if rule.action.measure is UsageMeasure.DATA_GB else usage.voice_minutes
    units = int(quantity // rule.action.per_quantity) if rule.action.per_quantity > 0 else 0
    return capped(rule, with_multiplier(rule, tier, units * rule.action.points))


def tenure_points(rule: EarningRule, years: int, tier: Tier) -> int:
    """Points for completing `years` of tenure."""
    base = rule.action.points * years if rule.action.per_tenure_year else rule.action.points
    return capped(rule, with_multiplier(rule, tier, base))


def fixed_points(rule: EarningRule, tier: Tier) -> int:
    """Points of a one-off fact (first activation)."""
    return capped(rule, with_multiplier(rule, tier, rule.action.points))


def completed_years(start: date, today: date) -> int:
    """Whole years from `start` to `today`."""
    years = today.year - start.year
    if (today.month, today.day) < (start.month, start.day):
        years -= 1
    return max(years, 0)


def anniversary(start: date, years: int) -> date:
    """The date `years` after `start` (28 February for 29 February starts in common years)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)
