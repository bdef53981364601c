"""A customer's lifecycle: which moves STATUS_TRANSITIONS allows, what a churn needs, and what a move
records."""

import uuid
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chassis.errors import FailedPrecondition, InvalidArgument
from services.customer.customers.lifecycle import (
    STATUS_TRANSITIONS,
    ChurnReason,
    Customer,
    CustomerStatus,
    StatusChange,
    change_status,
)
from services.customer.customers.profile import CustomerProfile, Individual

CREATED = datetime(2024, 1, 10, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)

ALLOWED = sorted((source, target) for source, targets in STATUS_TRANSITIONS.items() for target in targets)
DISALLOWED = sorted(
    (source, target)
    for source, target in product(CustomerStatus, CustomerStatus)
    if target not in STATUS_TRANSITIONS[source]
)


def _customer(status: CustomerStatus, *, version: int = 3) -> Customer:
    return Customer(
        id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
        profile=CustomerProfile(party=Individual(given_name="Dilnoza", family_name="Yusupova")),
        status=status,
        create_time=CREATED,
        creator="shop-clerk-3",
        update_time=CREATED,
        updater="shop-clerk-3",
        version=version,
        churn_reason=ChurnReason.VOLUNTARY if status is CustomerStatus.CHURNED else None,
    )


def _move_to(status: CustomerStatus) -> StatusChange:
    """A well-formed request for `status`: a churn carries the reason it needs."""
    reason = ChurnReason.PORTED_TO_COMPETITOR if status is CustomerStatus.CHURNED else None
    return StatusChange(status=status, churn_reason=reason)


def _violated_fields(customer: Customer, change: StatusChange) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        change_status(customer, change, actor="supervisor-1", now=NOW)
    return [v.field for v in raised.value.violations]


def test_transition_table_covers_every_status() -> None:
    assert set(STATUS_TRANSITIONS) == set(CustomerStatus)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (CustomerStatus.PROSPECT, CustomerStatus.ACTIVE),
        (CustomerStatus.ACTIVE, CustomerStatus.SUSPENDED),
        (CustomerStatus.SUSPENDED, CustomerStatus.ACTIVE),
        (CustomerStatus.PROSPECT, CustomerStatus.CHURNED),
        (CustomerStatus.ACTIVE, CustomerStatus.CHURNED),
        (CustomerStatus.SUSPENDED, CustomerStatus.CHURNED),
        (CustomerStatus.CHURNED, CustomerStatus.ACTIVE),
    ],
)
def test_lifecycle_allows_signing_up_suspending_reactivating_churning_and_winning_back(
    source: CustomerStatus, target: CustomerStatus
) -> None:
    assert target in STATUS_TRANSITIONS[source]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (CustomerStatus.PROSPECT, CustomerStatus.SUSPENDED),
        (CustomerStatus.ACTIVE, CustomerStatus.PROSPECT),
        (CustomerStatus.SUSPENDED, CustomerStatus.PROSPECT),
        (CustomerStatus.CHURNED, CustomerStatus.PROSPECT),
        (CustomerStatus.CHURNED, CustomerStatus.SUSPENDED),
    ],
)
def test_lifecycle_never_returns_to_prospect_nor_suspends_a_customer_without_service(
    source: CustomerStatus, target: CustomerStatus
) -> None:
    with pytest.raises(FailedPrecondition):
        change_status(_customer(source), _move_to(target), actor="supervisor-1", now=NOW)


@pytest.mark.parametrize(("source", "target"), ALLOWED)
def test_allowed_transition_moves_the_customer(source: CustomerStatus, target: CustomerStatus) -> None:
    changed = change_status(_customer(source), _move_to(target), actor="supervisor-1", now=NOW)
    assert changed.status is target


@pytest.mark.parametrize(("source", "target"), ALLOWED)
def test_allowed_transition_bumps_version_and_records_updater(source: CustomerStatus, target: CustomerStatus) -> None:
    before = _customer(source, version=3)
    changed = change_status(before, _move_to(target), actor="supervisor-1", now=NOW)
    assert (changed.version, changed.updater, changed.update_time) == (4, "supervisor-1", NOW)
    assert (changed.creator, changed.create_time) == (before.creator, before.create_time)


@pytest.mark.parametrize(("source", "target"), DISALLOWED)
def test_disallowed_transition_is_failed_precondition(source: CustomerStatus, target: CustomerStatus) -> None:
    with pytest.raises(FailedPrecondition) as raised:
        change_status(_customer(source), _move_to(target), actor="supervisor-1", now=NOW)
    assert raised.value.reason == "STATUS_TRANSITION_NOT_ALLOWED"
    assert raised.value.metadata == {"from_status": source.value, "to_status": target.value}


def test_staying_in_the_same_status_is_not_a_transition() -> None:
    with pytest.raises(FailedPrecondition):
        change_status(_customer(CustomerStatus.ACTIVE), _move_to(CustomerStatus.ACTIVE), actor="a", now=NOW)


def test_churn_records_its_reason_and_cleaned_detail() -> None:
    change = StatusChange(CustomerStatus.CHURNED, ChurnReason.PORTED_TO_COMPETITOR, "  moved to   a rival ")
    changed = change_status(_customer(CustomerStatus.ACTIVE), change, actor="supervisor-1", now=NOW)
    assert (changed.churn_reason, changed.churn_detail) == (ChurnReason.PORTED_TO_COMPETITOR, "moved to a rival")


def test_churn_without_a_reason_is_invalid_argument_on_churn_reason() -> None:
    change = StatusChange(CustomerStatus.CHURNED, churn_reason=None)
    assert _violated_fields(_customer(CustomerStatus.ACTIVE), change) == ["churn_reason"]


@pytest.mark.parametrize("target", [CustomerStatus.SUSPENDED, CustomerStatus.ACTIVE])
def test_churn_reason_with_another_status_is_invalid_argument_on_churn_reason(target: CustomerStatus) -> None:
    source = CustomerStatus.ACTIVE if target is CustomerStatus.SUSPENDED else CustomerStatus.SUSPENDED
    change = StatusChange(target, churn_reason=ChurnReason.NON_PAYMENT)
    assert _violated_fields(_customer(source), change) == ["churn_reason"]


def test_churn_detail_with_another_status_is_invalid_argument_on_churn_reason() -> None:
    change = StatusChange(CustomerStatus.SUSPENDED, churn_detail="unpaid bills")
    assert _violated_fields(_customer(CustomerStatus.ACTIVE), change) == ["churn_reason"]


def test_missing_status_is_invalid_argument_on_status() -> None:
    assert _violated_fields(_customer(CustomerStatus.ACTIVE), StatusChange(status=None)) == ["status"]


def test_winning_back_a_churned_customer_clears_the_churn_reason() -> None:
    churned = _customer(CustomerStatus.CHURNED)
    assert churned.churn_reason is not None
    won_back = change_status(churned, StatusChange(CustomerStatus.ACTIVE), actor="retention-desk", now=NOW)
    assert (won_back.status, won_back.churn_reason, won_back.churn_detail) == (CustomerStatus.ACTIVE, None, "")


@given(start=st.sampled_from(CustomerStatus), requested=st.lists(st.sampled_from(CustomerStatus), max_size=30))
def test_random_walk_of_status_changes_never_leaves_the_transition_table(
    start: CustomerStatus, requested: list[CustomerStatus]
) -> None:
    customer = _customer(start, version=1)
    for step, target in enumerate(requested):
        now = NOW + timedelta(minutes=step)
        try:
            changed = change_status(customer, _move_to(target), actor=f"actor-{step}", now=now)
        except FailedPrecondition as rejection:
            assert target not in STATUS_TRANSITIONS[customer.status]
            assert rejection.reason == "STATUS_TRANSITION_NOT_ALLOWED"
            continue
        assert target in STATUS_TRANSITIONS[customer.status]
        assert changed.status is target
        assert changed.version == customer.version + 1
        assert (changed.updater, changed.update_time) == (f"actor-{step}", now)
        customer = changed
