"""A customer as stored and its lifecycle: prospect, active, suspended, churned (and won back), the
moves allowed between them, and erasure, after which only a shell of the customer remains."""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chassis.errors import FailedPrecondition, Violations, invalid_field
from services.customer.customers.profile import CustomerProfile, Individual, Organization, Party
from services.customer.customers.text import clean_text

ERASED_NAME = "erased"


class CustomerStatus(StrEnum):
    """Lifecycle of a customer."""

    PROSPECT = "PROSPECT"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    CHURNED = "CHURNED"


class ChurnReason(StrEnum):
    """Why a customer left."""

    PORTED_TO_COMPETITOR = "PORTED_TO_COMPETITOR"
    VOLUNTARY = "VOLUNTARY"
    NON_PAYMENT = "NON_PAYMENT"
    DECEASED = "DECEASED"
    OTHER = "OTHER"


@dataclass(frozen=True)
class Customer:
    """A customer as stored: the profile plus lifecycle and audit."""

    id: uuid.UUID
    profile: CustomerProfile
    status: CustomerStatus
    create_time: datetime
    creator: str
    update_time: datetime
    updater: str
    version: int = 1
    churn_reason: ChurnReason | None = None
    churn_detail: str = ""
    erase_time: datetime | None = None
    """When the customer's personal data was erased; None while it is kept."""

    @property
    def search_key(self) -> str:
        """The names search finds the customer by; none for an erased customer, whose marker name is no
        name (search must not find the shells by it)."""
        return "" if self.erase_time else self.profile.search_key


@dataclass(frozen=True)
class StatusChange:
    """A requested lifecycle move."""

    status: CustomerStatus | None
    churn_reason: ChurnReason | None = None
    churn_detail: str = ""


def initial_status(requested: CustomerStatus | None) -> CustomerStatus:
    """A new customer starts as a prospect, or active when signed up with a line."""
    if requested is None:
        return CustomerStatus.PROSPECT
    if requested not in (CustomerStatus.PROSPECT, CustomerStatus.ACTIVE):
        raise invalid_field("customer.status", "a new customer must be PROSPECT or ACTIVE")
    return requested


# Which lifecycle moves are allowed; churned customers can be won back.
STATUS_TRANSITIONS: dict[CustomerStatus, frozenset[CustomerStatus]] = {
    CustomerStatus.PROSPECT: frozenset({CustomerStatus.ACTIVE, CustomerStatus.CHURNED}),
    CustomerStatus.ACTIVE: frozenset({CustomerStatus.SUSPENDED, CustomerStatus.CHURNED}),
    CustomerStatus.SUSPENDED: frozenset({CustomerStatus.ACTIVE, CustomerStatus.CHURNED}),
    CustomerStatus.CHURNED: frozenset({CustomerStatus.ACTIVE}),
}


def change_status(customer: Customer, change: StatusChange, *, actor: str, now: datetime) -> Customer:
    """The customer after a lifecycle move; a churn needs a reason, anything else must not have one."""
    status = change.status
    if status is None:
        raise invalid_field("status", "is required")
    violations = Violations()
    if status is CustomerStatus.CHURNED and change.churn_reason is None:
        violations.add("churn_reason", "is required when the status is CHURNED")
    elif status is not CustomerStatus.CHURNED and (change.churn_reason or change.churn_detail):
        violations.add("churn_reason", "is allowed only when the status is CHURNED")
    violations.raise_if_any()
    if status not in STATUS_TRANSITIONS[customer.status]:
        raise FailedPrecondition(
            "STATUS_TRANSITION_NOT_ALLOWED",
            f"a {customer.status.value} customer cannot become {status.value}",
            {"from_status": customer.status.value, "to_status": status.value},
        )
    return replace(
        customer,
        status=status,
        churn_reason=change.churn_reason,
        churn_detail=clean_text(change.churn_detail),
        update_time=now,
        updater=actor,
        version=customer.version + 1,
    )


def ensure_not_erased(customer: Customer) -> None:
    """An erased customer is a shell that no change may fill with personal data again."""
    if customer.erase_time is not None:
        raise FailedPrecondition(
            "CUSTOMER_ERASED",
            "the customer's personal data was erased; a returning person is a new customer",
            {"erase_time": customer.erase_time.isoformat()},
        )


def erased_customer(customer: Customer, *, actor: str, now: datetime) -> Customer:
    """The shell that remains of `customer` after erasure. The row, its status, churn reason, timestamps,
    acquisition channel and retailer stay, so that counts still add up; every name becomes ERASED_NAME
    (an individual's given and family name, an organization's legal name) and everything else that
    describes the person goes (middle name, birth date, gender, language, trading name, tax id,
    contact media, churn detail)."""
    party: Party
    if isinstance(customer.profile.party, Individual):
        party = Individual(given_name=ERASED_NAME, family_name=ERASED_NAME)
    else:
        party = Organization(legal_name=ERASED_NAME, kind=customer.profile.party.kind)
    profile = CustomerProfile(
        party=party,
        acquisition_channel=customer.profile.acquisition_channel,
        retailer_id=customer.profile.retailer_id,
    )
    return replace(
        customer,
        profile=profile,
        churn_detail="",
        update_time=now,
        updater=actor,
        version=customer.version + 1,
        erase_time=now,
    )
