"""Action rules, kept as data that marketing manages: whom an action is for (segments, loyalty tiers,
regions, market), where it may be presented, and the value and business weight arbitration weighs it
by; and the contact policy that says how often and when an offer may be put to a customer."""

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chassis.errors import Violations, etag_mismatch
from services.offers.money import MARKET_CURRENCY

RULE_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
SEGMENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_LIST = 50
MAX_TEXT = 2000
DEFAULT_VALIDITY_DAYS = 14
CHANNELS = ("RETAIL_SHOP", "WEB", "APP", "CALL_CENTRE")
"""The channels an action may be presented through (crm.common.v1.Channel without its prefix)."""


class ActionKind(StrEnum):
    """What an action does; every kind but a service message is marketing."""

    RETENTION_OFFER = "RETENTION_OFFER"
    BUNDLE_OFFER = "BUNDLE_OFFER"
    LOYALTY_OFFER = "LOYALTY_OFFER"
    SERVICE_MESSAGE = "SERVICE_MESSAGE"

    @property
    def is_marketing(self) -> bool:
        """Whether the action needs the customer's marketing consent."""
        return self is not ActionKind.SERVICE_MESSAGE

    @property
    def words(self) -> str:
        """The kind as people read it."""
        return self.value.lower().replace("_", " ")


@dataclass(frozen=True)
class ActionRule:
    """One version of a rule that makes an action a candidate for a customer."""

    rule_id: str
    display_name: str
    kind: ActionKind
    offering: str = ""
    message: str = ""
    market: str = ""
    required_segments: tuple[str, ...] = ()
    excluded_segments: tuple[str, ...] = ()
    loyalty_tiers: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    value: float = 0.0
    business_weight: float = 1.0
    active: bool = True
    offer_validity_days: int = DEFAULT_VALIDITY_DAYS
    version: int = 1
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def name(self) -> str:
        """`actionRules/{rule}`."""
        return f"actionRules/{self.rule_id}"


UPDATABLE_RULE_FIELDS = (
    "display_name",
    "kind",
    "offering",
    "message",
    "market",
    "required_segments",
    "excluded_segments",
    "loyalty_tiers",
    "regions",
    "channels",
    "value",
    "business_weight",
    "active",
    "offer_validity_days",
)


def checked_rule(rule: ActionRule, path: str = "action_rule") -> ActionRule:
    """The rule with its texts trimmed, after checking every field; INVALID_ARGUMENT naming each bad one."""
    violations = Violations()
    if not RULE_ID.fullmatch(rule.rule_id):
        violations.add("action_rule_id", "must be 1 to 63 lower-case letters, digits or dashes, from a letter")
    display_name = rule.display_name.strip()
    if not display_name or len(display_name) > 200:
        violations.add(f"{path}.display_name", "is required, at most 200 characters")
    if len(rule.message) > MAX_TEXT:
        violations.add(f"{path}.message", f"must be at most {MAX_TEXT} characters")
    if rule.kind is ActionKind.SERVICE_MESSAGE and not rule.message.strip():
        violations.add(f"{path}.message", "is required for a service message")
    if rule.kind is not ActionKind.SERVICE_MESSAGE and not rule.offering:
        violations.add(
            f"{path}.offering", "is required for an offer: name the plans/{plan} or bundles/{bundle} offered"
        )
    if rule.market and rule.market not in MARKET_CURRENCY:
        violations.add(f"{path}.market", f"must be empty or one of {', '.join(sorted(MARKET_CURRENCY))}")
    for field_name in ("required_segments", "excluded_segments", "loyalty_tiers"):
        values = getattr(rule, field_name)
        if len(values) > MAX_LIST or any(not SEGMENT_ID.fullmatch(value) for value in values):
            violations.add(f"{path}.{field_name}", f"at most {MAX_LIST} ids of lower-case letters, digits and dashes")
    if set(rule.required_segments) & set(rule.excluded_segments):
        violations.add(f"{path}.excluded_segments", "must not name a segment that is also required")
    regions = tuple(region.strip() for region in rule.regions)
    if len(regions) > MAX_LIST or any(not region or len(region) > 200 for region in regions):
        violations.add(f"{path}.regions", f"at most {MAX_LIST} regions, each 1 to 200 characters")
    if any(channel not in CHANNELS for channel in rule.channels):
        violations.add(f"{path}.channels", "must name channels, not CHANNEL_UNSPECIFIED")
    if not 0 <= rule.value <= 1e12:
        violations.add(f"{path}.value", "must be between 0 and 1e12")
    if not 0 <= rule.business_weight <= 1000:
        violations.add(f"{path}.business_weight", "must be between 0 and 1000")
    if not 1 <= rule.offer_validity_days <= 365:
        violations.add(f"{path}.offer_validity_days", "must be between 1 and 365 (0 means 14)")
    violations.raise_if_any()
    return replace(rule, display_name=display_name, message=rule.message.strip(), regions=regions)


def updated_rule(
    current: ActionRule, patch: ActionRule, paths: list[str], *, expected_version: int | None, now: datetime
) -> ActionRule:
    """The next version of `current` with the fields named in `paths` taken from `patch`."""
    violations = Violations()
    if not paths:
        violations.add("update_mask", "must name at least one field")
    for field_path in paths:
        if field_path not in UPDATABLE_RULE_FIELDS:
            violations.add(
                "update_mask", f"{field_path!r} cannot be updated; updatable: {', '.join(UPDATABLE_RULE_FIELDS)}"
            )
    violations.raise_if_any()
    if expected_version is not None and expected_version != current.version:
        raise etag_mismatch(current.name)
    changed = checked_rule(replace(current, **{field_path: getattr(patch, field_path) for field_path in paths}))
    return replace(changed, version=current.version + 1, update_time=now)


@dataclass(frozen=True)
class ContactPolicy:
    """How often and when an offer may be put to a customer."""

    max_offers_per_week_per_channel: int = 2
    decline_cooldown_days: int = 30
    quiet_hours_start_hour: int = 21
    quiet_hours_end_hour: int = 9
    quiet_hours_channels: tuple[str, ...] = ("APP",)
    version: int = 1
    update_time: datetime | None = None

    def quiet_at(self, local_hour: int) -> bool:
        """Whether `local_hour` falls in the quiet hours (which may run over midnight)."""
        start, end = self.quiet_hours_start_hour, self.quiet_hours_end_hour
        if start == end:
            return False
        return start <= local_hour < end if start < end else local_hour >= start or local_hour < end


UPDATABLE_POLICY_FIELDS = (
    "max_offers_per_week_per_channel",
    "decline_cooldown_days",
    "quiet_hours_start_hour",
    "quiet_hours_end_hour",
    "quiet_hours_channels",
)


def updated_policy(
    current: ContactPolicy, patch: ContactPolicy, paths: list[str], *, expected_version: int | None, now: datetime
) -> ContactPolicy:
    """The next version of the contact policy with the fields named in `paths` taken from `patch`."""
    violations = Violations()
    if not paths:
        violations.add("update_mask", "must name at least one field")
    for field_path in paths:
        if field_path not in UPDATABLE_POLICY_FIELDS:
            violations.add(
                "update_mask", f"{field_path!r} cannot be updated; updatable: {', '.join(UPDATABLE_POLICY_FIELDS)}"
            )
    violations.raise_if_any()
    if expected_version is not None and expected_version != current.version:
        raise etag_mismatch("contactPolicy")
    changed = replace(current, **{field_path: getattr(patch, field_path) for field_path in paths})
    if not 1 <= changed.max_offers_per_week_per_channel <= 100:
        violations.add("contact_policy.max_offers_per_week_per_channel", "must be between 1 and 100")
    if not 0 <= changed.decline_cooldown_days <= 365:
        violations.add("contact_policy.decline_cooldown_days", "must be between 0 and 365")
    for field_path in ("quiet_hours_start_hour", "quiet_hours_end_hour"):
        if not 0 <= getattr(changed, field_path) <= 23:
            violations.add(f"contact_policy.{field_path}", "must be an hour from 0 to 23")
    if any(channel not in CHANNELS for channel in changed.quiet_hours_channels):
        violations.add("contact_policy.quiet_hours_channels", "must name channels, not CHANNEL_UNSPECIFIED")
    violations.raise_if_any()
    return replace(changed, version=current.version + 1, update_time=now)
