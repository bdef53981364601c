"""Builders of valid requests and small helpers shared by the integration and end-to-end tests."""

import itertools
import random
import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
import phonenumbers
from google.type import date_pb2, money_pb2

from chassis.errors import DomainError
from chassis.status import from_rpc_error
from crm.common.v1 import common_pb2
from crm.customer.v1 import billing_pb2, customer_pb2, customer_service_pb2
from crm.customer.v1.billing_pb2_grpc import BillingServiceStub

CUSTOMER_SERVICE = "crm.customer.v1.CustomerService"
USAGE_SERVICE = "crm.customer.v1.UsageService"
LOYALTY_SERVICE = "crm.loyalty.v1.LoyaltyService"

_numbers = random.Random(20261123)
_issued: set[str] = set()
_request_ids = itertools.count()


def unique_mobile(region: str = "UZ") -> str:
    """A valid mobile number of `region` in E.164 that no other test has used in this run."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    national = str(example.national_number)
    for _ in range(10_000):
        keep = max(2, len(national) - 7)
        candidate = national[:keep] + "".join(str(_numbers.randint(0, 9)) for _ in range(len(national) - keep))
        number = phonenumbers.parse(f"+{example.country_code}{candidate}")
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if phonenumbers.is_valid_number(number) and e164 not in _issued:
            _issued.add(e164)
            return e164
    raise RuntimeError(f"no free mobile number for {region}")


def national_format(e164: str) -> str:
    """The number as people write it at home, e.g. "050 123 4567"."""
    return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)


def international_format(e164: str) -> str:
    """The number with spaces and dashes, e.g. "+998 90 123 45 67"."""
    return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def request_id() -> str:
    """A fresh request id."""
    return f"test-{uuid.uuid4()}-{next(_request_ids)}"


def person(
    given: str = "Gʻulom",
    family: str = "Karimov",
    *,
    phone: str | None = None,
    region: str = "Toshkent viloyati",
    country: str = "UZ",
    retailer_id: str = "",
    birth: tuple[int, int, int] = (1988, 5, 17),
) -> customer_pb2.Customer:
    """A valid individual customer with a phone and a postal address."""
    channel = common_pb2.CHANNEL_RETAIL_SHOP if retailer_id else common_pb2.CHANNEL_APP
    return customer_pb2.Customer(
        individual=customer_pb2.Individual(
            given_name=given,
            family_name=family,
            birth_date=date_pb2.Date(year=birth[0], month=birth[1], day=birth[2]),
            gender=customer_pb2.GENDER_MALE,
            preferred_language="uz-Latn",
        ),
        contact_media=[
            customer_pb2.ContactMedium(phone_number=phone or unique_mobile(country), preferred=True),
            customer_pb2.ContactMedium(
                postal_address=common_pb2.PostalAddress(country_code=country, region=region, city="Chirchiq")
            ),
        ],
        acquisition_channel=channel,
        retailer_id=retailer_id,
    )


def create_request(
    customer: customer_pb2.Customer, rid: str | None = None
) -> customer_service_pb2.CreateCustomerRequest:
    """A CreateCustomer request with a fresh request id."""
    return customer_service_pb2.CreateCustomerRequest(customer=customer, request_id=rid or request_id())


def line(msisdn: str | None = None, *, plan: str = "plans/uz-start-5gb") -> customer_pb2.Subscription:
    """A valid active line activated in 2019."""
    return customer_pb2.Subscription(
        msisdn=msisdn or unique_mobile("UZ"),
        tariff_plan_id=plan,
        activation_date=date_pb2.Date(year=2019, month=3, day=1),
        purpose=customer_pb2.SUBSCRIPTION_PURPOSE_PERSONAL,
        home_region="Toshkent",
    )


async def failure(call: object) -> tuple[grpc.StatusCode, DomainError]:
    """Awaits a call expected to fail; its code and the domain error it carried."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code(), from_rpc_error(error)
    raise AssertionError("the call succeeded but was expected to fail")


def proto_day(value: date) -> date_pb2.Date:
    """A google.type.Date of `value`."""
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


async def bill_and_pay(
    billing: BillingServiceStub, customer: str, amount: money_pb2.Money, *, timeout_seconds: float = 5.0
) -> str:
    """Records an invoice issued five days ago and its full payment today; returns the payment's name."""
    today = datetime.now(UTC).date()
    invoice_id = f"INV-{uuid.uuid4().hex[:10]}"
    await billing.RecordInvoice(
        billing_pb2.RecordInvoiceRequest(
            parent=customer,
            invoice=billing_pb2.Invoice(
                invoice_id=invoice_id,
                amount=amount,
                issue_date=proto_day(today - timedelta(days=5)),
                due_date=proto_day(today + timedelta(days=15)),
            ),
            request_id=request_id(),
        ),
        timeout=timeout_seconds,
    )
    payment = await billing.RecordPayment(
        billing_pb2.RecordPaymentRequest(
            parent=customer,
            payment=billing_pb2.Payment(
                payment_id=f"PAY-{uuid.uuid4().hex[:10]}",
                invoice_id=invoice_id,
                amount=amount,
                paid_date=proto_day(today),
            ),
            request_id=request_id(),
        ),
        timeout=timeout_seconds,
    )
    return payment.name
