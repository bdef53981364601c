"""The segmentation config: thresholds and weights of every rule, which are data (stored, versioned and
changed through the API), not code branches."""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace

from chassis.errors import Violations, etag_mismatch

CONFIG_NAME = "segmentationConfig"
"""The config's resource name (a singleton)."""


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
        return cls(**kept)  # type: ignore[arg-type]  # stored JSON holds the field types it was written with


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


def check_config_version(expected_version: int | None, current_version: int) -> None:
    """An update made against an older version than the stored one is ABORTED (the caller re-reads);
    no expected version means the caller does not care."""
    if expected_version is not None and expected_version != current_version:
        raise etag_mismatch(CONFIG_NAME)
