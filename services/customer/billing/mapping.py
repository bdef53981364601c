"""Translation between the billing contract's messages and the billing part's types."""

import uuid

from google.type import money_pb2

from chassis.names import ResourcePattern
from chassis.wellknown import amount_from_proto, date_from_proto, date_to_proto, decimal_to_money, timestamp_to_proto
from crm.customer.v1 import billing_pb2
from services.customer.billing.rules import Amount, BillingSummary, Invoice, Payment, amount_in_cents

INVOICE = ResourcePattern("customers/{customer}/invoices/{invoice}")
"""A bill of a customer, named by the billing system's invoice id."""
PAYMENT = ResourcePattern("customers/{customer}/payments/{payment}")
"""Money received from a customer, named by the billing system's payment id."""
BILLING_SUMMARY = ResourcePattern("customers/{customer}/billingSummary")
"""What a customer's billing facts say today."""


def invoice_from_proto(message: billing_pb2.Invoice) -> Invoice:
    """An invoice to record."""
    return Invoice(
        invoice_id=message.invoice_id,
        amount=_amount_from_proto(message.amount, "invoice.amount"),
        issue_date=date_from_proto(message.issue_date, "invoice.issue_date"),
        due_date=date_from_proto(message.due_date, "invoice.due_date"),
    )


def payment_from_proto(message: billing_pb2.Payment) -> Payment:
    """A payment to record."""
    return Payment(
        payment_id=message.payment_id,
        invoice_id=message.invoice_id.strip(),
        amount=_amount_from_proto(message.amount, "payment.amount"),
        paid_date=date_from_proto(message.paid_date, "payment.paid_date"),
    )


def invoice_to_proto(customer_id: uuid.UUID, invoice: Invoice) -> billing_pb2.Invoice:
    """The Invoice message of a recorded invoice."""
    return billing_pb2.Invoice(
        name=INVOICE.format(customer_id, invoice.invoice_id),
        invoice_id=invoice.invoice_id,
        amount=decimal_to_money(invoice.amount.value, invoice.amount.currency),
        issue_date=date_to_proto(invoice.issue_date),
        due_date=date_to_proto(invoice.due_date),
        paid_amount=decimal_to_money(invoice.paid, invoice.amount.currency),
        create_time=timestamp_to_proto(invoice.create_time),
    )


def payment_to_proto(customer_id: uuid.UUID, payment: Payment) -> billing_pb2.Payment:
    """The Payment message of a recorded payment."""
    return billing_pb2.Payment(
        name=PAYMENT.format(customer_id, payment.payment_id),
        payment_id=payment.payment_id,
        invoice_id=payment.invoice_id,
        amount=decimal_to_money(payment.amount.value, payment.amount.currency),
        paid_date=date_to_proto(payment.paid_date),
        late=payment.late,
        create_time=timestamp_to_proto(payment.create_time),
    )


def summary_to_proto(customer_id: uuid.UUID, summary: BillingSummary) -> billing_pb2.BillingSummary:
    """The BillingSummary message."""
    return billing_pb2.BillingSummary(
        name=BILLING_SUMMARY.format(customer_id),
        outstanding_debt=decimal_to_money(summary.outstanding_debt, summary.currency),
        days_overdue=summary.days_overdue,
        late_payment_count=summary.late_payment_count,
        average_monthly_spend=decimal_to_money(summary.average_monthly_spend, summary.currency),
        months_billed=summary.months_billed,
    )


def _amount_from_proto(money: money_pb2.Money, field: str) -> Amount:
    return amount_in_cents(amount_from_proto(money, field), money.currency_code, field)
