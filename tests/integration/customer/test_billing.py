"""Billing facts against a real PostgreSQL: invoices, payments, and the summary they give."""

from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.type import date_pb2, money_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm.customer.v1 import billing_pb2
from crm.customer.v1.billing_pb2_grpc import BillingServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.support import create_request, failure, person, request_id

TODAY = datetime.now(UTC).date()


@pytest.fixture
def billing_stub(customer_channel: grpc.aio.Channel) -> BillingServiceStub:
    return BillingServiceStub(customer_channel)


def day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def uzs(units: int, nanos: int = 0) -> money_pb2.Money:
    return money_pb2.Money(currency_code="UZS", units=units, nanos=nanos)


async def new_customer(stub: CustomerServiceStub) -> str:
    return (await stub.CreateCustomer(create_request(person()), timeout=5)).name


async def invoice(
    stub: BillingServiceStub, parent: str, invoice_id: str, amount: money_pb2.Money, issued: date, due: date
) -> billing_pb2.Invoice:
    return await stub.RecordInvoice(
        billing_pb2.RecordInvoiceRequest(
            parent=parent,
            invoice=billing_pb2.Invoice(
                invoice_id=invoice_id, amount=amount, issue_date=day(issued), due_date=day(due)
            ),
            request_id=request_id(),
        ),
        timeout=5,
    )


async def pay(
    stub: BillingServiceStub, parent: str, payment_id: str, invoice_id: str, amount: money_pb2.Money, paid: date
) -> billing_pb2.Payment:
    return await stub.RecordPayment(
        billing_pb2.RecordPaymentRequest(
            parent=parent,
            payment=billing_pb2.Payment(
                payment_id=payment_id, invoice_id=invoice_id, amount=amount, paid_date=day(paid)
            ),
            request_id=request_id(),
        ),
        timeout=5,
    )


async def summary(stub: BillingServiceStub, parent: str) -> billing_pb2.BillingSummary:
    return await stub.GetBillingSummary(
        billing_pb2.GetBillingSummaryRequest(name=f"{parent}/billingSummary"), timeout=5
    )


async def test_partial_payment_leaves_the_remainder_as_debt_overdue_since_the_due_date(
    customer_stub: CustomerServiceStub, billing_stub: BillingServiceStub
):
    parent = await new_customer(customer_stub)
    await invoice(billing_stub, parent, "INV-1", uzs(120_000), TODAY - timedelta(days=50), TODAY - timedelta(days=40))
    await pay(billing_stub, parent, "PAY-1", "INV-1", uzs(20_000, 500_000_000), TODAY - timedelta(days=45))
    result = await summary(billing_stub, parent)
    assert result.outstanding_debt == uzs(99_999, 500_000_000)
    assert result.days_overdue == 40
    assert result.late_payment_count == 0


async def test_payment_after_the_due_date_is_late_and_counted(
    customer_stub: CustomerServiceStub, billing_stub: BillingServiceStub
):
    parent = await new_customer(customer_stub)
    await invoice(billing_stub, parent, "INV-7", uzs(50_000), TODAY - timedelta(days=40), TODAY - timedelta(days=30))
    payment = await pay(billing_stub, parent, "PAY-7", "INV-7", uzs(50_000), TODAY - timedelta(days=20))
    assert payment.late
    result = await summary(billing_stub, parent)
    assert result.late_payment_count == 1
    assert result.outstanding_debt == uzs(0) and result.days_overdue == 0


async def test_average_monthly_spend_is_over_billed_months(
    customer_stub: CustomerServiceStub, billing_stub: BillingServiceStub
):
    parent = await new_customer(customer_stub)
    first_of_month = TODAY.replace(day=1)
    months = [(first_of_month - timedelta(days=1)).replace(day=1), first_of_month]
    await invoice(billing_stub, parent, "A", uzs(100_000), months[0], months[0] + timedelta(days=10))
    await invoice(billing_stub, parent, "B", uzs(40_000), months[0] + timedelta(days=3), months[0] + timedelta(days=13))
    await invoice(billing_stub, parent, "C", uzs(60_000), months[1], months[1] + timedelta(days=10))
    result = await summary(billing_stub, parent)
    assert result.months_billed == 2
    assert result.average_monthly_spend == uzs(100_000)


async def test_a_payment_in_another_currency_is_refused_and_writes_nothing(
    customer_stub: CustomerServiceStub, billing_stub: BillingServiceStub, customer_engine: AsyncEngine
):
    parent = await new_customer(customer_stub)
    await invoice(billing_stub, parent, "INV-2", uzs(10_000), TODAY - timedelta(days=5), TODAY + timedelta(days=5))
    code, error = await failure(
        pay(billing_stub, parent, "PAY-2", "INV-2", money_pb2.Money(currency_code="USD", units=1), TODAY)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "CURRENCY_MISMATCH"
    async with customer_engine.connect() as connection:
        paid = await connection.execute(
            text("SELECT paid FROM invoices WHERE invoice_id = 'INV-2' AND customer_id = :c"),
            {"c": parent.removeprefix("customers/")},
        )
        assert paid.scalar_one() == 0
        payments = await connection.execute(
            text("SELECT count(*) FROM payments WHERE customer_id = :c"), {"c": parent.removeprefix("customers/")}
        )
        assert payments.scalar_one() == 0


async def test_repeating_a_request_records_once_and_reusing_an_invoice_id_is_already_exists(
    customer_stub: CustomerServiceStub, billing_stub: BillingServiceStub
):
    parent = await new_customer(customer_stub)
    request = billing_pb2.RecordInvoiceRequest(
        parent=parent,
        invoice=billing_pb2.Invoice(
            invoice_id="INV-3", amount=uzs(70_000), issue_date=day(TODAY), due_date=day(TODAY + timedelta(days=10))
        ),
        request_id=request_id(),
    )
    first = await billing_stub.RecordInvoice(request, timeout=5)
    again = await billing_stub.RecordInvoice(request, timeout=5)
    assert again == first
    code, error = await failure(invoice(billing_stub, parent, "INV-3", uzs(70_000), TODAY, TODAY + timedelta(days=10)))
    assert code == grpc.StatusCode.ALREADY_EXISTS and error.reason == "INVOICE_EXISTS"
    assert (await summary(billing_stub, parent)).outstanding_debt == uzs(70_000)


async def test_bad_invoice_names_its_fields(customer_stub: CustomerServiceStub, billing_stub: BillingServiceStub):
    parent = await new_customer(customer_stub)
    code, error = await failure(
        invoice(billing_stub, parent, "", money_pb2.Money(currency_code="uzs", units=-5), TODAY, TODAY - timedelta(1))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.violations} == {  # type: ignore[attr-defined]
        "invoice.invoice_id",
        "invoice.amount",
        "invoice.amount.currency_code",
        "invoice.due_date",
    }
    assert (await summary(billing_stub, parent)).months_billed == 0


async def test_a_payment_for_an_unknown_invoice_is_failed_precondition(
    customer_stub: CustomerServiceStub, billing_stub: BillingServiceStub
):
    parent = await new_customer(customer_stub)
    code, error = await failure(pay(billing_stub, parent, "PAY-9", "NOPE", uzs(1), TODAY))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "INVOICE_NOT_FOUND"


async def test_billing_for_an_unknown_customer_is_not_found(billing_stub: BillingServiceStub):
    parent = "customers/00000000-0000-4000-8000-00000000b111"
    code, error = await failure(invoice(billing_stub, parent, "X", uzs(1), TODAY, TODAY))
    assert code == grpc.StatusCode.NOT_FOUND and error.reason == "CUSTOMER_NOT_FOUND"
    code, _ = await failure(summary(billing_stub, parent))
    assert code == grpc.StatusCode.NOT_FOUND
