"""What a retail partner sees of a customer: phone numbers partly hidden wherever they sit, no birth
date, tax id or operator-internal fields; everything else unchanged. Customers see only the segments
the operator shows them."""

from pathlib import Path

from google.type import date_pb2

from crm.customer.v1 import customer_pb2, customer_service_pb2, segments_pb2
from gateway.app import contract_messages, guarded_methods
from gateway.policy import load_policy
from gateway.settings import DEFAULT_POLICY_FILE
from gateway.views import CustomerView, RetailerView, masked_phone_number

POLICY = load_policy(Path(DEFAULT_POLICY_FILE), guarded_methods(), contract_messages())


def test_a_phone_number_keeps_its_network_and_last_two_digits() -> None:
    assert masked_phone_number("+998901234567") == "+99890*****67"
    assert masked_phone_number("+380671234567") == "+38067*****67"
    assert masked_phone_number("+84912345678") == "+84912****78"


def test_a_short_number_shows_only_its_last_two_digits() -> None:
    assert masked_phone_number("+1234567") == "******67"


def customer() -> customer_pb2.Customer:
    found = customer_pb2.Customer(
        name="customers/6b0d5a3e-1111-4000-8000-000000000001",
        individual=customer_pb2.Individual(
            given_name="Dilnoza",
            family_name="Karimova",
            birth_date=date_pb2.Date(year=1990, month=4, day=12),
            gender=customer_pb2.GENDER_FEMALE,
            preferred_language="uz",
        ),
        retailer_id="retailers/texnomart",
        creator="agent-7",
        updater="agent-9",
    )
    found.contact_media.add(phone_number="+998901234567", preferred=True)
    found.contact_media.add(email_address="dilnoza@example.uz")
    return found


def test_a_partner_sees_the_customer_masked_and_nothing_else_changed() -> None:
    answer = customer_service_pb2.SearchCustomersResponse(customers=[customer()], next_page_token="t")
    RetailerView(POLICY).apply(answer)
    seen = answer.customers[0]
    expected = customer_pb2.Customer(
        name="customers/6b0d5a3e-1111-4000-8000-000000000001",
        individual=customer_pb2.Individual(given_name="Dilnoza", family_name="Karimova", preferred_language="uz"),
        retailer_id="retailers/texnomart",
    )
    expected.contact_media.add(phone_number="+99890*****67", preferred=True)
    expected.contact_media.add(email_address="dilnoza@example.uz")
    assert seen == expected
    assert answer.next_page_token == "t"


def test_a_partner_sees_a_lines_number_masked() -> None:
    answer = customer_service_pb2.ListSubscriptionsResponse(
        subscriptions=[customer_pb2.Subscription(name="customers/c/subscriptions/s", msisdn="+380671234567")]
    )
    RetailerView(POLICY).apply(answer)
    assert answer.subscriptions[0].msisdn == "+38067*****67"
    assert answer.subscriptions[0].name == "customers/c/subscriptions/s"


def test_an_organisations_tax_id_is_hidden_from_partners() -> None:
    business = customer_pb2.Customer(
        organization=customer_pb2.Organization(legal_name="Texnika LLC", tax_id="305123456")
    )
    RetailerView(POLICY).apply(business)
    assert business.organization.legal_name == "Texnika LLC"
    assert business.organization.tax_id == ""


def test_a_customer_sees_only_the_segments_shown_to_customers() -> None:
    answer = segments_pb2.CustomerSegments(name="customers/c/segments", churn_risk_score=0.83)
    for segment in (
        "segments/type-consumer",
        "segments/debtor",
        "segments/usage-data-heavy",
        "segments/churn-risk-high",
    ):
        answer.memberships.add(segment=segment, rule="r")
    answer.churn_factors.add(factor="late_payments", value="3")
    CustomerView(POLICY).apply(answer)
    assert [m.segment for m in answer.memberships] == ["segments/type-consumer", "segments/usage-data-heavy"]
    assert answer.churn_risk_score == 0.0 and len(answer.churn_factors) == 0
