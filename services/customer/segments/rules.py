"""Explainable segmentation: which segments a customer is in, by which rule, on which values, and how
a new evaluation changes the memberships a customer had.

Plain Python: the evaluator gathers the inputs, this module decides; the thresholds come from the
config (`services.customer.segments.config`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from services.customer.customers.lifecycle import ChurnReason, CustomerStatus
from services.customer.customers.profile import OrganizationKind
from services.customer.segments.catalogue import AGE_PREFIX, REGION_PREFIX, TENURE_PREFIX, region_slug
from services.customer.segments.config import SegmentationConfig


@dataclass(frozen=True)
class MonthTotals:
    """A customer's usage over all lines in one month."""

    month: date
    voice_minutes: float = 0.0
    on_net_minutes: float = 0.0
    data_mb: float = 0.0
    roaming_days: int = 0


@dataclass(frozen=True)
class SegmentInputs:
    """Everything the rules look at for one customer."""

    is_individual: bool
    organization_kind: OrganizationKind | None
    status: CustomerStatus
    churn_reason: ChurnReason | None
    birth_date: date | None
    region: str
    first_activation: date | None
    average_monthly_spend: Decimal
    days_overdue: int
    late_payment_count: int
    months: Sequence[MonthTotals] = ()
    """Usage of the recent months, newest first."""


@dataclass(frozen=True)
class Evidence:
    """One value a rule compared."""

    factor: str
    value: str
    threshold: str = ""
    contribution: float = 0.0


@dataclass(frozen=True)
class Membership:
    """A segment the customer is in, and why."""

    segment: str
    rule: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating one customer."""

    memberships: list[Membership] = field(default_factory=list)
    churn_risk_score: float = 0.0
    churn_factors: list[Evidence] = field(default_factory=list)


def evaluate(
    inputs: SegmentInputs, config: SegmentationConfig, *, vip_spend_threshold: Decimal | None, today: date
) -> Evaluation:
    """Every segment of the customer with the evidence, and the churn-risk score with its factors."""
    memberships = [_customer_type(inputs)]
    spend = inputs.average_monthly_spend
    if vip_spend_threshold is not None and spend > 0 and spend >= vip_spend_threshold:
        memberships.append(
            Membership(
                "value-vip",
                "value.top_share",
                (
                    Evidence("average_monthly_spend", str(spend), str(vip_spend_threshold)),
                    Evidence("vip_top_share", str(config.vip_top_share)),
                ),
            )
        )
    memberships.extend(_debtor(inputs, config))
    if inputs.status is CustomerStatus.CHURNED and inputs.churn_reason is ChurnReason.PORTED_TO_COMPETITOR:
        memberships.append(Membership("churned-to-competitor", "status.ported", (Evidence("churn_reason", "PORTED"),)))
    score, factors = churn_risk(inputs, config, today)
    if inputs.status is not CustomerStatus.CHURNED and score >= config.churn_high_threshold:
        memberships.append(
            Membership(
                "churn-risk-high",
                "churn.score",
                (Evidence("churn_risk_score", f"{score:.2f}", str(config.churn_high_threshold)), *factors),
            )
        )
    memberships.extend(_usage(inputs, config))
    if inputs.first_activation is not None:
        years = _whole_years(inputs.first_activation, today)
        memberships.append(
            Membership(
                f"{TENURE_PREFIX}{_band(years, config.tenure_band_years)}",
                "tenure.band",
                (Evidence("tenure_years", str(years), ",".join(map(str, config.tenure_band_years))),),
            )
        )
    if inputs.birth_date is not None:
        age = _whole_years(inputs.birth_date, today)
        memberships.append(
            Membership(
                f"{AGE_PREFIX}{_band(age, config.age_band_years)}",
                "age.band",
                (Evidence("age_years", str(age), ",".join(map(str, config.age_band_years))),),
            )
        )
    if region := region_slug(inputs.region):
        memberships.append(Membership(f"{REGION_PREFIX}{region}", "region.home", (Evidence("region", inputs.region),)))
    return Evaluation(memberships, score, factors)


def churn_risk(inputs: SegmentInputs, config: SegmentationConfig, today: date) -> tuple[float, list[Evidence]]:
    """A score from 0 to 1 summing weighted factors: falling usage, short tenure, debt."""
    factors: list[Evidence] = []
    if len(inputs.months) >= 2:
        latest = _units(inputs.months[0])
        earlier = [_units(m) for m in inputs.months[1:]]
        baseline = sum(earlier) / len(earlier)
        if baseline > 0 and latest < baseline * config.falling_usage_ratio:
            drop = 1 - latest / baseline
            factors.append(
                Evidence(
                    "falling_usage",
                    f"{latest:.0f} vs {baseline:.0f}",
                    str(config.falling_usage_ratio),
                    round(config.churn_weight_falling_usage * drop, 4),
                )
            )
    if inputs.first_activation is not None:
        months = _whole_months(inputs.first_activation, today)
        if months < config.short_tenure_months:
            share = 1 - months / config.short_tenure_months
            factors.append(
                Evidence(
                    "short_tenure",
                    f"{months} months",
                    str(config.short_tenure_months),
                    round(config.churn_weight_short_tenure * share, 4),
                )
            )
    if inputs.days_overdue > 0:
        share = min(1.0, inputs.days_overdue / 90)
        factors.append(
            Evidence("debt", f"{inputs.days_overdue} days overdue", "90", round(config.churn_weight_debt * share, 4))
        )
    return min(1.0, round(sum(f.contribution for f in factors), 4)), factors


def _customer_type(inputs: SegmentInputs) -> Membership:
    if inputs.is_individual:
        kind = "consumer"
    elif inputs.organization_kind is OrganizationKind.HOUSEHOLD:
        kind = "household"
    elif inputs.organization_kind is OrganizationKind.GOVERNMENT:
        kind = "government"
    else:
        kind = "business"
    party = "individual" if inputs.is_individual else str(inputs.organization_kind)
    return Membership(f"type-{kind}", "type.party", (Evidence("party", party),))


def _debtor(inputs: SegmentInputs, config: SegmentationConfig) -> list[Membership]:
    evidence = []
    if inputs.days_overdue >= config.debtor_min_days_overdue:
        evidence.append(Evidence("days_overdue", str(inputs.days_overdue), str(config.debtor_min_days_overdue)))
    if inputs.late_payment_count >= config.debtor_min_late_payments:
        evidence.append(
            Evidence("late_payments_12m", str(inputs.late_payment_count), str(config.debtor_min_late_payments))
        )
    if not evidence:
        return []
    rule = "debtor.overdue" if inputs.days_overdue >= config.debtor_min_days_overdue else "debtor.frequently_late"
    return [Membership("debtor", rule, tuple(evidence))]


def _usage(inputs: SegmentInputs, config: SegmentationConfig) -> list[Membership]:
    if not inputs.months:
        return []
    month = inputs.months[0]
    label = month.month.strftime("%Y-%m")
    found = []
    if month.data_mb >= config.data_heavy_mb:
        found.append(
            ("usage-data-heavy", "usage.data", Evidence("data_mb", f"{month.data_mb:.0f}", str(config.data_heavy_mb)))
        )
    if month.voice_minutes >= config.voice_heavy_minutes:
        found.append(
            (
                "usage-voice-heavy",
                "usage.voice",
                Evidence("voice_minutes", f"{month.voice_minutes:.0f}", str(config.voice_heavy_minutes)),
            )
        )
    if month.voice_minutes > 0 and month.on_net_minutes / month.voice_minutes >= config.on_net_share:
        share = month.on_net_minutes / month.voice_minutes
        found.append(
            ("usage-mostly-on-net", "usage.on_net", Evidence("on_net_share", f"{share:.2f}", str(config.on_net_share)))
        )
    if month.roaming_days >= config.roamer_days:
        found.append(
            (
                "usage-roamer",
                "usage.roaming",
                Evidence("roaming_days", str(month.roaming_days), str(config.roamer_days)),
            )
        )
    if _units(month) < config.low_user_units:
        found.append(
            ("usage-low-user", "usage.low", Evidence("usage_units", f"{_units(month):.0f}", str(config.low_user_units)))
        )
    return [Membership(segment, rule, (evidence, Evidence("month", label))) for segment, rule, evidence in found]


def _units(month: MonthTotals) -> float:
    """One number for "how much the customer uses": MB of data plus voice minutes."""
    return month.data_mb + month.voice_minutes


def _band(value: int, bounds: Sequence[int]) -> str:
    lower = 0
    for upper in bounds:
        if value < upper:
            return f"under-{upper}" if lower == 0 else f"{lower}-{upper}"
        lower = upper
    return f"{lower}-plus"


def _whole_years(start: date, today: date) -> int:
    return today.year - start.year - ((today.month, today.day) < (start.month, start.day))


def _whole_months(start: date, today: date) -> int:
    return max(0, (today.year - start.year) * 12 + today.month - start.month - (today.day < start.day))


@dataclass(frozen=True)
class StoredMembership:
    """A membership as stored, since when the customer has been in the segment."""

    segment: str
    rule: str
    evidence: tuple[Evidence, ...]
    since: datetime


@dataclass(frozen=True)
class CustomerScore:
    """The latest evaluation's numbers for a customer."""

    churn_risk_score: float
    churn_factors: tuple[Evidence, ...]
    evaluate_time: datetime


@dataclass(frozen=True)
class MembershipChange:
    """The segments a customer entered and the names of those they left with one evaluation."""

    entered: list[Membership]
    left: list[str]

    @property
    def count_changes(self) -> dict[str, int]:
        """How each segment's member count moves: +1 per segment entered, -1 per segment left."""
        return {m.segment: 1 for m in self.entered} | {name: -1 for name in self.left}


def membership_change(current_segments: Sequence[str], evaluation: Evaluation) -> MembershipChange:
    """What `evaluation` changes for a customer who is in `current_segments`."""
    current = set(current_segments)
    wanted = {m.segment: m for m in evaluation.memberships}
    return MembershipChange(
        entered=[m for name, m in wanted.items() if name not in current],
        left=[name for name in current_segments if name not in wanted],
    )
