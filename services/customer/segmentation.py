"""Explainable segmentation: which segments a customer is in, by which rule, on which values.

The thresholds and weights are data (`SegmentationConfig`, stored and changed through the API), not
code branches. Plain Python: the evaluator gathers the inputs, this module decides.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum

from chassis.errors import Violations
from services.customer.domain import ChurnReason, CustomerStatus, OrganizationKind, fold


class Dimension(StrEnum):
    """The aspect a segment divides customers by (crm.customer.v1.SegmentDimension); each segment has one."""

    CUSTOMER_TYPE = "CUSTOMER_TYPE"
    VALUE = "VALUE"
    DEBTOR = "DEBTOR"
    CHURN_RISK = "CHURN_RISK"
    CHURNED = "CHURNED"
    USAGE = "USAGE"
    TENURE = "TENURE"
    AGE = "AGE"
    REGION = "REGION"


# Every segment with a fixed id: its dimension, and what membership means for people.
_FIXED_SEGMENTS: dict[str, tuple[Dimension, str]] = {
    "type-consumer": (Dimension.CUSTOMER_TYPE, "Individual customers"),
    "type-household": (Dimension.CUSTOMER_TYPE, "Household accounts"),
    "type-business": (Dimension.CUSTOMER_TYPE, "Enterprises and small or medium businesses"),
    "type-government": (Dimension.CUSTOMER_TYPE, "Government bodies"),
    "value-vip": (Dimension.VALUE, "Top share of customers by average monthly spend"),
    "debtor": (Dimension.DEBTOR, "Overdue beyond the threshold, or frequently late"),
    "churn-risk-high": (Dimension.CHURN_RISK, "Churn-risk score at or above the threshold"),
    "churned-to-competitor": (Dimension.CHURNED, "Left by porting their number to a competitor"),
    "usage-data-heavy": (Dimension.USAGE, "Data above the threshold last month"),
    "usage-voice-heavy": (Dimension.USAGE, "Voice minutes above the threshold last month"),
    "usage-mostly-on-net": (Dimension.USAGE, "Most voice minutes within the operator's network"),
    "usage-roamer": (Dimension.USAGE, "Several days roaming abroad last month"),
    "usage-low-user": (Dimension.USAGE, "Little use of data and voice last month"),
}
# Segments named by a value (a configured band, a home region) carry it after their dimension's prefix.
_TENURE_PREFIX = "tenure-"
_AGE_PREFIX = "age-"
_REGION_PREFIX = "region-"
# A band id as `_band` writes it: "under-25", "25-35" (25 to 34) or "65-plus".
_BAND = re.compile(r"^(?:under-(?P<below>\d+)|(?P<lower>\d+)-(?P<upper>\d+)|(?P<from>\d+)-plus)$")


def dimension_of(segment: str) -> Dimension:
    """The dimension of a segment id ("age-25-35" -> AGE); ValueError for an id no rule makes."""
    return _dimension_and_description(segment)[0]


def describe_segment(segment: str) -> str:
    """What membership of a segment means, for people ("age-25-35" -> "Aged 25 to 34")."""
    return _dimension_and_description(segment)[1]


def _dimension_and_description(segment: str) -> tuple[Dimension, str]:
    if segment in _FIXED_SEGMENTS:
        return _FIXED_SEGMENTS[segment]
    if segment.startswith(_TENURE_PREFIX) and (band := _BAND.match(segment.removeprefix(_TENURE_PREFIX))):
        return Dimension.TENURE, _describe_tenure_band(band)
    if segment.startswith(_AGE_PREFIX) and (band := _BAND.match(segment.removeprefix(_AGE_PREFIX))):
        return Dimension.AGE, _describe_age_band(band)
    if segment.startswith(_REGION_PREFIX) and (slug := segment.removeprefix(_REGION_PREFIX)):
        region = " ".join(word[:1].upper() + word[1:] for word in slug.split("-"))
        return Dimension.REGION, f"Home region: {region}"
    raise ValueError(f"no segmentation rule makes the segment {segment!r}")


def _describe_age_band(band: re.Match[str]) -> str:
    if band["below"]:
        return f"Aged under {band['below']}"
    if band["from"]:
        return f"Aged {band['from']} or over"
    lower, last = int(band["lower"]), int(band["upper"]) - 1
    return f"Aged {lower}" if lower == last else f"Aged {lower} to {last}"


def _describe_tenure_band(band: re.Match[str]) -> str:
    if band["below"]:
        return f"Customer for less than {_years(int(band['below']))}"
    if band["from"]:
        return f"Customer for {_years(int(band['from']))} or more"
    lower, last = int(band["lower"]), int(band["upper"]) - 1
    return f"Customer for {_years(lower)}" if lower == last else f"Customer for {lower} to {_years(last)}"


def _years(count: int) -> str:
    return "1 year" if count == 1 else f"{count} years"


@dataclass(frozen=True)
class SegmentationConfig:
    """Thresholds and weights of every rule (see crm.customer.v1.SegmentationConfig)."""

    vip_top_share: float = 0.05
    debtor_min_days_overdue: int = 30
    debtor_min_late_payments: int = 3
    churn_high_threshold: float = 0.5
    churn_weight_falling_usage: float = 0.4
    churn_weight_short_tenure: float = 0.25
    churn_weight_debt: float = 0.35
    falling_usage_ratio: float = 0.6
    short_tenure_months: int = 6
    data_heavy_mb: float = 10_000.0
    voice_heavy_minutes: float = 600.0
    on_net_share: float = 0.7
    roamer_days: int = 3
    low_user_units: float = 100.0
    tenure_band_years: tuple[int, ...] = (1, 3, 5, 10)
    age_band_years: tuple[int, ...] = (25, 35, 45, 55, 65)

    def to_json(self) -> dict[str, object]:
        """The config as stored."""
        values = asdict(self)
        values["tenure_band_years"] = list(self.tenure_band_years)
        values["age_band_years"] = list(self.age_band_years)
        return values

    @classmethod
    def from_json(cls, values: dict[str, object]) -> "SegmentationConfig":
        """The config from its stored form; unknown keys are ignored, missing ones default."""
        known = {f.name for f in fields(cls)}
        kept = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
        return cls(**kept)  # type: ignore[arg-type]


UPDATABLE_CONFIG_FIELDS = tuple(f.name for f in fields(SegmentationConfig))


def validate_config(config: SegmentationConfig) -> None:
    """Shares and weights in [0, 1], counts and amounts not negative, bands ascending and positive."""
    violations = Violations()
    for name in ("vip_top_share", "churn_high_threshold", "falling_usage_ratio", "on_net_share"):
        value = getattr(config, name)
        if not (math.isfinite(value) and 0 < value <= 1):
            violations.add(f"config.{name}", "must be greater than 0 and at most 1")
    for name in ("churn_weight_falling_usage", "churn_weight_short_tenure", "churn_weight_debt"):
        value = getattr(config, name)
        if not (math.isfinite(value) and 0 <= value <= 1):
            violations.add(f"config.{name}", "must be between 0 and 1")
    for name in ("debtor_min_days_overdue", "debtor_min_late_payments", "short_tenure_months", "roamer_days"):
        if getattr(config, name) < 1:
            violations.add(f"config.{name}", "must be at least 1")
    for name in ("data_heavy_mb", "voice_heavy_minutes", "low_user_units"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            violations.add(f"config.{name}", "must be positive")
    for name in ("tenure_band_years", "age_band_years"):
        bands = getattr(config, name)
        if not bands or any(b <= 0 for b in bands) or list(bands) != sorted(set(bands)):
            violations.add(f"config.{name}", "must be positive whole years in ascending order")
    violations.raise_if_any()


def apply_config_update(
    current: SegmentationConfig, patch: SegmentationConfig, paths: Sequence[str]
) -> SegmentationConfig:
    """`current` with the masked fields from `patch`, validated."""
    violations = Violations()
    if not paths:
        violations.add("update_mask", "must name at least one field")
    for path in paths:
        if path not in UPDATABLE_CONFIG_FIELDS:
            violations.add("update_mask", f"unknown or read-only field {path!r}")
    violations.raise_if_any()
    updated = replace(current, **{path: getattr(patch, path) for path in paths})
    validate_config(updated)
    return updated


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
                f"{_TENURE_PREFIX}{_band(years, config.tenure_band_years)}",
                "tenure.band",
                (Evidence("tenure_years", str(years), ",".join(map(str, config.tenure_band_years))),),
            )
        )
    if inputs.birth_date is not None:
        age = _whole_years(inputs.birth_date, today)
        memberships.append(
            Membership(
                f"{_AGE_PREFIX}{_band(age, config.age_band_years)}",
                "age.band",
                (Evidence("age_years", str(age), ",".join(map(str, config.age_band_years))),),
            )
        )
    if region := region_slug(inputs.region):
        memberships.append(Membership(f"{_REGION_PREFIX}{region}", "region.home", (Evidence("region", inputs.region),)))
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


def region_slug(region: str) -> str:
    """A region's segment key: folded, words joined by '-' ("Toshkent viloyati" -> "toshkent-viloyati")."""
    return "-".join(re.findall(r"\w+", fold(region)))


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
