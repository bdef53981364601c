"""A customer's lines: what a valid new line is, which changes a line allows, and when a customer with
lines can be deleted."""

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from chassis.errors import FailedPrecondition, InvalidArgument
from services.customer.customers.lifecycle import Customer, CustomerStatus
from services.customer.customers.lines import (
    SUBSCRIPTION_TRANSITIONS,
    Subscription,
    SubscriptionPatch,
    SubscriptionPurpose,
    SubscriptionStatus,
    apply_subscription_update,
    ensure_customer_can_have_lines,
    ensure_deletable,
    normalized_subscription,
)
from services.customer.customers.profile import CustomerProfile, Individual

TODAY = date(2024, 6, 1)
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CUSTOMER_ID = uuid.UUID("00000000-0000-4000-8000-000000000007")


def _line(**changes: object) -> Subscription:
    line = Subscription(
        id=uuid.UUID("00000000-0000-4000-8000-0000000000a1"),
        customer_id=CUSTOMER_ID,
        msisdn="+998901234567",
        tariff_plan_id="uz-unlim-30",
        activation_date=date(2024, 5, 1),
        status=SubscriptionStatus.ACTIVE,
        purpose=SubscriptionPurpose.PERSONAL,
        version=2,
    )
    return replace(line, **changes)


def _customer(status: CustomerStatus) -> Customer:
    return Customer(
        id=CUSTOMER_ID,
        profile=CustomerProfile(party=Individual(given_name="Bobur", family_name="Aliev")),
        status=status,
        create_time=NOW,
        creator="shop-clerk-3",
        update_time=NOW,
        updater="shop-clerk-3",
    )


def _creation_violations(line: Subscription) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        normalized_subscription(line, default_region="UZ", today=TODAY)
    return [v.field for v in raised.value.violations]


def _update_violations(current: Subscription, patch: SubscriptionPatch, paths: list[str]) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        apply_subscription_update(current, patch, paths, now=NOW)
    return [v.field for v in raised.value.violations]


# normalized_subscription ---------------------------------------------------------------------------


def test_new_line_msisdn_is_stored_in_e164() -> None:
    line = normalized_subscription(_line(msisdn="90 123-45-67"), default_region="UZ", today=TODAY)
    assert line.msisdn == "+998901234567"


def test_new_line_tariff_and_home_region_are_cleaned() -> None:
    line = normalized_subscription(
        _line(tariff_plan_id=" uz-unlim-30 ", home_region="  Samarqand   viloyati "), default_region="UZ", today=TODAY
    )
    assert (line.tariff_plan_id, line.home_region) == ("uz-unlim-30", "Samarqand viloyati")


def test_new_line_activated_today_is_accepted() -> None:
    line = normalized_subscription(_line(activation_date=TODAY), default_region="UZ", today=TODAY)
    assert line.activation_date == TODAY


def test_new_line_may_start_suspended() -> None:
    line = normalized_subscription(_line(status=SubscriptionStatus.SUSPENDED), default_region="UZ", today=TODAY)
    assert line.status is SubscriptionStatus.SUSPENDED


@pytest.mark.parametrize("msisdn", ["", "   ", "12345", "not a number", "+998 90"])
def test_bad_msisdn_is_invalid_argument_on_msisdn(msisdn: str) -> None:
    assert _creation_violations(_line(msisdn=msisdn)) == ["subscription.msisdn"]


@pytest.mark.parametrize("tariff", ["", "  ", "plan with spaces"])
def test_missing_or_malformed_tariff_is_invalid_argument_on_tariff_plan_id(tariff: str) -> None:
    assert _creation_violations(_line(tariff_plan_id=tariff)) == ["subscription.tariff_plan_id"]


def test_future_activation_date_is_invalid_argument_on_activation_date() -> None:
    assert _creation_violations(_line(activation_date=TODAY + timedelta(days=1))) == ["subscription.activation_date"]


def test_missing_activation_date_is_invalid_argument_on_activation_date() -> None:
    assert _creation_violations(_line(activation_date=None)) == ["subscription.activation_date"]


def test_missing_purpose_is_invalid_argument_on_purpose() -> None:
    assert _creation_violations(_line(purpose=None)) == ["subscription.purpose"]


def test_line_terminated_at_creation_is_invalid_argument_on_status() -> None:
    assert _creation_violations(_line(status=SubscriptionStatus.TERMINATED)) == ["subscription.status"]


def test_every_bad_field_of_a_new_line_is_reported_at_once() -> None:
    line = _line(
        msisdn="1", tariff_plan_id="", activation_date=None, purpose=None, status=SubscriptionStatus.TERMINATED
    )
    assert sorted(_creation_violations(line)) == [
        "subscription.activation_date",
        "subscription.msisdn",
        "subscription.purpose",
        "subscription.status",
        "subscription.tariff_plan_id",
    ]


# apply_subscription_update -------------------------------------------------------------------------

ALLOWED = sorted((source, target) for source, targets in SUBSCRIPTION_TRANSITIONS.items() for target in targets)


@pytest.mark.parametrize(("source", "target"), ALLOWED)
def test_allowed_line_transition_changes_the_status(source: SubscriptionStatus, target: SubscriptionStatus) -> None:
    updated = apply_subscription_update(_line(status=source), SubscriptionPatch(status=target), ["status"], now=NOW)
    assert (updated.status, updated.version, updated.update_time) == (target, 3, NOW)


@pytest.mark.parametrize("target", list(SubscriptionStatus))
def test_terminated_line_cannot_change_status(target: SubscriptionStatus) -> None:
    terminated = _line(status=SubscriptionStatus.TERMINATED)
    with pytest.raises(FailedPrecondition) as raised:
        apply_subscription_update(terminated, SubscriptionPatch(status=target), ["status"], now=NOW)
    assert raised.value.reason == "SUBSCRIPTION_TERMINATED"


def test_terminated_line_cannot_change_tariff() -> None:
    terminated = _line(status=SubscriptionStatus.TERMINATED)
    with pytest.raises(FailedPrecondition) as raised:
        apply_subscription_update(terminated, SubscriptionPatch(tariff_plan_id="uz-new"), ["tariff_plan_id"], now=NOW)
    assert raised.value.reason == "SUBSCRIPTION_TERMINATED"


def test_terminated_line_has_no_way_out_in_the_transition_table() -> None:
    assert SUBSCRIPTION_TRANSITIONS[SubscriptionStatus.TERMINATED] == frozenset()


def test_only_masked_fields_of_a_line_change() -> None:
    patch = SubscriptionPatch(tariff_plan_id=" uz-family-50 ", status=SubscriptionStatus.SUSPENDED, home_region="X")
    updated = apply_subscription_update(_line(), patch, ["tariff_plan_id"], now=NOW)
    assert updated == _line(tariff_plan_id="uz-family-50", update_time=NOW, version=3)


def test_purpose_and_home_region_can_change() -> None:
    patch = SubscriptionPatch(purpose=SubscriptionPurpose.BUSINESS, home_region=" Buxoro  ")
    updated = apply_subscription_update(_line(), patch, ["purpose", "home_region"], now=NOW)
    assert (updated.purpose, updated.home_region) == (SubscriptionPurpose.BUSINESS, "Buxoro")


@pytest.mark.parametrize("path", ["msisdn", "customer_id", "activation_date", "colour"])
def test_path_outside_the_updatable_fields_is_invalid_argument_on_update_mask(path: str) -> None:
    assert _update_violations(_line(), SubscriptionPatch(), [path]) == ["update_mask"]


def test_empty_line_update_mask_is_invalid_argument_on_update_mask() -> None:
    assert _update_violations(_line(), SubscriptionPatch(), []) == ["update_mask"]


@pytest.mark.parametrize("path", ["status", "purpose"])
def test_masked_enum_left_unset_is_invalid_argument_on_that_field(path: str) -> None:
    assert _update_violations(_line(), SubscriptionPatch(), [path]) == [f"subscription.{path}"]


def test_masked_blank_tariff_is_invalid_argument_on_tariff_plan_id() -> None:
    patch = SubscriptionPatch(tariff_plan_id="  ")
    assert _update_violations(_line(), patch, ["tariff_plan_id"]) == ["subscription.tariff_plan_id"]


# ensure_customer_can_have_lines ---------------------------------------------------------------------


def test_churned_customer_cannot_get_a_line() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ensure_customer_can_have_lines(_customer(CustomerStatus.CHURNED))
    assert raised.value.reason == "CUSTOMER_CHURNED"


@pytest.mark.parametrize("status", [CustomerStatus.PROSPECT, CustomerStatus.ACTIVE, CustomerStatus.SUSPENDED])
def test_customer_who_has_not_churned_can_get_a_line(status: CustomerStatus) -> None:
    ensure_customer_can_have_lines(_customer(status))


# ensure_deletable ----------------------------------------------------------------------------------


def test_customer_without_lines_is_deletable() -> None:
    ensure_deletable([])


def test_customer_whose_lines_are_all_terminated_is_deletable() -> None:
    ensure_deletable([_line(status=SubscriptionStatus.TERMINATED), _line(status=SubscriptionStatus.TERMINATED)])


@pytest.mark.parametrize("status", [SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED])
def test_customer_with_a_line_in_service_is_failed_precondition(status: SubscriptionStatus) -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ensure_deletable([_line(status=SubscriptionStatus.TERMINATED), _line(status=status)])
    assert raised.value.reason == "CUSTOMER_HAS_LINES"


def test_refusal_to_delete_counts_the_lines_in_service() -> None:
    lines = [
        _line(status=SubscriptionStatus.ACTIVE),
        _line(status=SubscriptionStatus.SUSPENDED),
        _line(status=SubscriptionStatus.TERMINATED),
    ]
    with pytest.raises(FailedPrecondition) as raised:
        ensure_deletable(iter(lines))
    assert raised.value.metadata == {"live_lines": "2"}
