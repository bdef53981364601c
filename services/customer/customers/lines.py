"""A customer's lines (subscriptions): what a valid new line is, which changes a line allows, and what
lines in service forbid (deleting or erasing the customer)."""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from chassis.errors import FailedPrecondition, Violations
from services.customer.customers.lifecycle import Customer, CustomerStatus
from services.customer.customers.text import clean_text, is_reference_id
from services.customer.phone_numbers import normalize_phone

SUBSCRIPTION_UPDATABLE = ("tariff_plan_id", "status", "purpose", "home_region")


class SubscriptionStatus(StrEnum):
    """Lifecycle of a line."""

    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


class SubscriptionPurpose(StrEnum):
    """What a line is used for."""

    PERSONAL = "PERSONAL"
    BUSINESS = "BUSINESS"


@dataclass(frozen=True)
class Subscription:
    """A mobile line of a customer."""

    id: uuid.UUID
    customer_id: uuid.UUID
    msisdn: str
    tariff_plan_id: str
    activation_date: date | None
    status: SubscriptionStatus
    purpose: SubscriptionPurpose | None
    home_region: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    version: int = 1


@dataclass(frozen=True)
class SubscriptionPatch:
    """New values for UpdateSubscription; only the fields its mask names are read."""

    tariff_plan_id: str = ""
    status: SubscriptionStatus | None = None
    purpose: SubscriptionPurpose | None = None
    home_region: str = ""


SUBSCRIPTION_TRANSITIONS: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    SubscriptionStatus.ACTIVE: frozenset({SubscriptionStatus.SUSPENDED, SubscriptionStatus.TERMINATED}),
    SubscriptionStatus.SUSPENDED: frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED}),
    SubscriptionStatus.TERMINATED: frozenset(),
}


def normalized_subscription(
    subscription: Subscription, *, default_region: str, today: date, path: str = "subscription"
) -> Subscription:
    """The line with its MSISDN in E.164 and every field checked."""
    violations = Violations()
    msisdn = normalize_phone(subscription.msisdn, default_region) if subscription.msisdn.strip() else None
    if msisdn is None:
        violations.add(f"{path}.msisdn", f"{subscription.msisdn!r} is not a valid phone number")
    tariff = subscription.tariff_plan_id.strip()
    if not is_reference_id(tariff):
        violations.add(f"{path}.tariff_plan_id", "is required: 1 to 128 letters, digits or . _ : / -")
    if subscription.activation_date is None:
        violations.add(f"{path}.activation_date", "is required")
    elif subscription.activation_date > today:
        violations.add(f"{path}.activation_date", "must not be in the future")
    if subscription.purpose is None:
        violations.add(f"{path}.purpose", "is required")
    if subscription.status is SubscriptionStatus.TERMINATED:
        violations.add(f"{path}.status", "a new line cannot be TERMINATED")
    violations.raise_if_any()
    return replace(
        subscription, msisdn=msisdn or "", tariff_plan_id=tariff, home_region=clean_text(subscription.home_region)
    )


def ensure_customer_can_have_lines(customer: Customer) -> None:
    """A churned customer gets a line only after being won back (status ACTIVE again)."""
    if customer.status is CustomerStatus.CHURNED:
        raise FailedPrecondition(
            "CUSTOMER_CHURNED",
            "a churned customer cannot get a new line; reactivate the customer first",
            {"customer_status": customer.status.value},
        )


def apply_subscription_update(
    current: Subscription, patch: SubscriptionPatch, paths: Sequence[str], *, now: datetime
) -> Subscription:
    """`current` with the masked fields from `patch`; a terminated line stays terminated."""
    violations = Violations()
    if not paths:
        violations.add("update_mask", "must name at least one field")
    for path in paths:
        if path not in SUBSCRIPTION_UPDATABLE:
            violations.add("update_mask", f"{path!r} cannot be updated; updatable: {', '.join(SUBSCRIPTION_UPDATABLE)}")
    changes = {path: getattr(patch, path) for path in paths if path in SUBSCRIPTION_UPDATABLE}
    if "status" in changes and changes["status"] is None:
        violations.add("subscription.status", "is required when named in update_mask")
    if "purpose" in changes and changes["purpose"] is None:
        violations.add("subscription.purpose", "is required when named in update_mask")
    if "tariff_plan_id" in changes:
        changes["tariff_plan_id"] = changes["tariff_plan_id"].strip()
        if not is_reference_id(changes["tariff_plan_id"]):
            violations.add("subscription.tariff_plan_id", "is required: 1 to 128 letters, digits or . _ : / -")
    if "home_region" in changes:
        changes["home_region"] = clean_text(changes["home_region"])
    violations.raise_if_any()
    if current.status is SubscriptionStatus.TERMINATED:
        raise FailedPrecondition("SUBSCRIPTION_TERMINATED", "a terminated line cannot change")
    new_status = changes.get("status", current.status)
    if new_status is not current.status and new_status not in SUBSCRIPTION_TRANSITIONS[current.status]:
        raise FailedPrecondition(
            "SUBSCRIPTION_TRANSITION_NOT_ALLOWED",
            f"a {current.status.value} line cannot become {new_status.value}",
            {"from_status": current.status.value, "to_status": new_status.value},
        )
    return replace(current, **changes, update_time=now, version=current.version + 1)


def ensure_deletable(subscriptions: Iterable[Subscription]) -> None:
    """A customer with a line still in service cannot be deleted."""
    live = [s for s in subscriptions if s.status is not SubscriptionStatus.TERMINATED]
    if live:
        raise FailedPrecondition(
            "CUSTOMER_HAS_LINES",
            f"the customer still has {len(live)} line(s) in service; terminate them first",
            {"live_lines": str(len(live))},
        )


def ensure_erasable(subscriptions: Iterable[Subscription]) -> None:
    """A customer with a line in service is still served under contract and cannot be erased."""
    live = [s for s in subscriptions if s.status is not SubscriptionStatus.TERMINATED]
    if live:
        raise FailedPrecondition(
            "CUSTOMER_HAS_LINES",
            f"the customer still has {len(live)} line(s) in service; terminate them before erasing",
            {"live_lines": str(len(live))},
        )


def erased_subscription(subscription: Subscription, *, now: datetime) -> Subscription:
    """The line without its number, the one thing on it that points at a person; tariff, status,
    purpose, region and activation date stay."""
    return replace(subscription, msisdn="", update_time=now, version=subscription.version + 1)
