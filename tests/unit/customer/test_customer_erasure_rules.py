"""The right to be forgotten, as rules: what remains of an erased customer and of their lines, and
when erasure is refused."""

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from chassis.errors import FailedPrecondition
from services.customer.customers.lifecycle import (
    ERASED_NAME,
    ChurnReason,
    Customer,
    CustomerStatus,
    ensure_not_erased,
    erased_customer,
)
from services.customer.customers.lines import (
    Subscription,
    SubscriptionPurpose,
    SubscriptionStatus,
    ensure_erasable,
    erased_subscription,
)
from services.customer.customers.profile import (
    Channel,
    ContactMedium,
    CustomerProfile,
    Gender,
    Individual,
    Organization,
    OrganizationKind,
)

SIGN_UP = datetime(2021, 4, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CUSTOMER_ID = uuid.UUID("00000000-0000-4000-8000-000000000099")


def _customer(party: Individual | Organization) -> Customer:
    return Customer(
        id=CUSTOMER_ID,
        profile=CustomerProfile(
            party=party,
            contact_media=(ContactMedium(phone_number="+998901234567"), ContactMedium(email_address="m@example.org")),
            acquisition_channel=Channel.RETAIL_SHOP,
            retailer_id="retailers/chain-7",
        ),
        status=CustomerStatus.CHURNED,
        create_time=SIGN_UP,
        creator="shop-clerk-3",
        update_time=SIGN_UP,
        updater="shop-clerk-3",
        version=4,
        churn_reason=ChurnReason.PORTED_TO_COMPETITOR,
        churn_detail="moved to another operator with Madina's family",
    )


def _line(status: SubscriptionStatus) -> Subscription:
    return Subscription(
        id=uuid.uuid4(),
        customer_id=CUSTOMER_ID,
        msisdn="+998901234567",
        tariff_plan_id="plans/uz-start-5gb",
        activation_date=date(2019, 3, 1),
        status=status,
        purpose=SubscriptionPurpose.PERSONAL,
        version=3,
    )


def test_an_erased_person_keeps_only_the_erased_name_and_what_counts_need() -> None:
    person = Individual("Madina", "Karimova", "Toxirovna", date(1991, 2, 3), Gender.FEMALE, "uz-Latn")
    shell = erased_customer(_customer(person), actor="dpo-1", now=NOW)
    assert shell.profile == CustomerProfile(
        party=Individual(given_name=ERASED_NAME, family_name=ERASED_NAME),
        acquisition_channel=Channel.RETAIL_SHOP,
        retailer_id="retailers/chain-7",
    )
    assert (shell.status, shell.churn_reason, shell.churn_detail) == (
        CustomerStatus.CHURNED,
        ChurnReason.PORTED_TO_COMPETITOR,
        "",
    )
    assert (shell.create_time, shell.update_time, shell.erase_time, shell.updater) == (SIGN_UP, NOW, NOW, "dpo-1")
    assert shell.version == 5


def test_an_erased_organization_keeps_its_kind_but_no_names_or_tax_id() -> None:
    company = Organization("Olmaliq Kon MChJ", OrganizationKind.ENTERPRISE, "Olmaliq", "301234567")
    shell = erased_customer(_customer(company), actor="dpo-1", now=NOW)
    assert shell.profile.party == Organization(legal_name=ERASED_NAME, kind=OrganizationKind.ENTERPRISE)


def test_an_erased_line_loses_its_number_and_keeps_the_rest() -> None:
    line = _line(SubscriptionStatus.TERMINATED)
    erased = erased_subscription(line, now=NOW)
    assert erased == replace(line, msisdn="", update_time=NOW, version=4)


def test_a_customer_with_a_line_in_service_cannot_be_erased() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ensure_erasable([_line(SubscriptionStatus.TERMINATED), _line(SubscriptionStatus.SUSPENDED)])
    assert raised.value.reason == "CUSTOMER_HAS_LINES" and raised.value.metadata == {"live_lines": "1"}


def test_a_customer_whose_lines_are_all_terminated_can_be_erased() -> None:
    ensure_erasable([_line(SubscriptionStatus.TERMINATED)])


def test_an_erased_customer_cannot_be_changed_again() -> None:
    shell = erased_customer(_customer(Individual("Madina", "Karimova")), actor="dpo-1", now=NOW)
    with pytest.raises(FailedPrecondition) as raised:
        ensure_not_erased(shell)
    assert raised.value.reason == "CUSTOMER_ERASED"
