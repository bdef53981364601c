"""Billing facts and what they say about a customer: debt, days overdue, late payments, ARPU.
Plain Python; amounts are Decimal with an ISO 4217 currency."""

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from chassis.errors import FailedPrecondition, Violations, invalid_field

_BILLING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
LATE_PAYMENT_WINDOW_DAYS = 365
ARPU_MONTHS = 6


@dataclass(frozen=True)
class Amount:
    """An amount of money."""

    value: Decimal
    currency: str


@dataclass(frozen=True)
class Invoice:
    """A bill; `paid` is what payments covered so far."""

    invoice_id: str
    amount: Amount
    issue_date: date | None
    due_date: date | None
    paid: Decimal = Decimal(0)
    create_time: datetime | None = None
    """When the service recorded it; None until recorded."""

    @property
    def unpaid(self) -> Decimal:
        """What is still owed on it (never negative)."""
        return max(self.amount.value - self.paid, Decimal(0))


@dataclass(frozen=True)
class Payment:
    """Money received, possibly for an invoice."""

    payment_id: str
    invoice_id: str
    amount: Amount
    paid_date: date | None
    late: bool = False
    create_time: datetime | None = None
    """When the service recorded it; None until recorded."""


@dataclass(frozen=True)
class BillingSummary:
    """What the billing facts say about a customer on a given day."""

    currency: str
    outstanding_debt: Decimal
    days_overdue: int
    late_payment_count: int
    average_monthly_spend: Decimal
    months_billed: int


def amount_in_cents(value: Decimal, currency: str, field: str) -> Amount:
    """An amount of money as billed: INVALID_ARGUMENT naming `field` when it has more than two decimal
    places (invoices and payments are kept to the cent)."""
    if value != value.quantize(Decimal("0.01")):
        raise invalid_field(field, "must not have more than two decimal places")
    return Amount(value, currency)


def check_invoice(invoice: Invoice, *, billing_currency: str | None) -> None:
    """An invoice needs an id, a positive amount in the customer's currency and consistent dates."""
    violations = Violations()
    _check_id(invoice.invoice_id, "invoice.invoice_id", violations)
    _check_amount(invoice.amount, "invoice.amount", violations)
    if invoice.issue_date is None:
        violations.add("invoice.issue_date", "is required")
    if invoice.due_date is None:
        violations.add("invoice.due_date", "is required")
    elif invoice.issue_date is not None and invoice.due_date < invoice.issue_date:
        violations.add("invoice.due_date", "must not be before issue_date")
    violations.raise_if_any()
    _check_currency(invoice.amount.currency, billing_currency)


def check_payment(payment: Payment, *, invoice: Invoice | None, billing_currency: str | None) -> None:
    """A payment needs an id, a positive amount in the invoice's (or customer's) currency and a date."""
    violations = Violations()
    _check_id(payment.payment_id, "payment.payment_id", violations)
    _check_amount(payment.amount, "payment.amount", violations)
    if payment.paid_date is None:
        violations.add("payment.paid_date", "is required")
    violations.raise_if_any()
    _check_currency(payment.amount.currency, invoice.amount.currency if invoice else billing_currency)


def ensure_invoice_found(payment: Payment, invoice: Invoice | None) -> None:
    """A payment that names an invoice needs the customer to have that invoice."""
    if payment.invoice_id and invoice is None:
        raise FailedPrecondition(
            "INVOICE_NOT_FOUND",
            f"the customer has no invoice {payment.invoice_id}",
            {"invoice_id": payment.invoice_id},
        )


def recorded_payment(payment: Payment, invoice: Invoice | None, *, now: datetime) -> Payment:
    """The payment as recorded at `now`, marked late when it came after its invoice's due date."""
    return replace(payment, late=is_late(payment, invoice), create_time=now)


def is_late(payment: Payment, invoice: Invoice | None) -> bool:
    """A payment is late when it arrives after its invoice's due date."""
    return bool(invoice and invoice.due_date and payment.paid_date and payment.paid_date > invoice.due_date)


def summarize(
    invoices: Iterable[Invoice], payments: Iterable[Payment], *, currency: str, today: date
) -> BillingSummary:
    """Debt, days overdue, late payments in 12 months and average monthly spend over the last
    six months that were billed."""
    invoices = list(invoices)
    unpaid = [i for i in invoices if i.unpaid > 0]
    overdue = [i.due_date for i in unpaid if i.due_date is not None and i.due_date < today]
    window_start = today - timedelta(days=LATE_PAYMENT_WINDOW_DAYS)
    late = sum(1 for p in payments if p.late and p.paid_date is not None and p.paid_date >= window_start)
    by_month: dict[date, Decimal] = defaultdict(Decimal)
    for invoice in invoices:
        if invoice.issue_date is not None and invoice.issue_date <= today:
            by_month[invoice.issue_date.replace(day=1)] += invoice.amount.value
    recent = sorted(by_month, reverse=True)[:ARPU_MONTHS]
    average = (sum((by_month[m] for m in recent), Decimal(0)) / len(recent)) if recent else Decimal(0)
    return BillingSummary(
        currency=currency,
        outstanding_debt=sum((i.unpaid for i in unpaid), Decimal(0)),
        days_overdue=(today - min(overdue)).days if overdue else 0,
        late_payment_count=late,
        average_monthly_spend=average.quantize(Decimal("0.01")),
        months_billed=len(recent),
    )


def _check_id(value: str, field: str, violations: Violations) -> None:
    if not _BILLING_ID.fullmatch(value):
        violations.add(field, "is required: 1 to 128 letters, digits, '.', '_', ':' or '-'")


def _check_amount(amount: Amount, field: str, violations: Violations) -> None:
    if not _CURRENCY.fullmatch(amount.currency):
        violations.add(f"{field}.currency_code", "must be an ISO 4217 code such as UZS")
    if not amount.value.is_finite() or amount.value <= 0:
        violations.add(field, "must be positive")


def _check_currency(currency: str, expected: str | None) -> None:
    if expected is not None and currency != expected:
        raise FailedPrecondition(
            "CURRENCY_MISMATCH",
            f"the customer is billed in {expected}, not {currency}",
            {"billing_currency": expected, "currency": currency},
        )
