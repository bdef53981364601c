"""Billing facts: what a valid invoice and payment are, when a payment is late, and what the facts say
about a customer on a given day (debt, days overdue, late payments, average monthly spend)."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chassis.errors import FailedPrecondition, InvalidArgument
from services.customer.billing.rules import (
    Amount,
    Invoice,
    Payment,
    amount_in_cents,
    check_invoice,
    check_payment,
    ensure_invoice_found,
    is_late,
    recorded_payment,
    summarize,
)

TODAY = date(2024, 6, 15)


def _invoice(
    invoice_id: str = "INV-2024-05-001",
    value: str = "120000.00",
    *,
    issue: date | None = date(2024, 5, 1),
    due: date | None = date(2024, 5, 20),
    paid: str = "0",
    currency: str = "UZS",
) -> Invoice:
    return Invoice(invoice_id, Amount(Decimal(value), currency), issue, due, Decimal(paid))


def _payment(
    payment_id: str = "PAY-77",
    value: str = "120000.00",
    *,
    paid_date: date | None = date(2024, 5, 18),
    late: bool = False,
    currency: str = "UZS",
    invoice_id: str = "INV-2024-05-001",
) -> Payment:
    return Payment(payment_id, invoice_id, Amount(Decimal(value), currency), paid_date, late)


def _invoice_violations(invoice: Invoice) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        check_invoice(invoice, billing_currency="UZS")
    return [v.field for v in raised.value.violations]


def _payment_violations(payment: Payment) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        check_payment(payment, invoice=None, billing_currency="UZS")
    return [v.field for v in raised.value.violations]


# check_invoice -------------------------------------------------------------------------------------


def test_well_formed_invoice_in_the_billing_currency_is_accepted() -> None:
    check_invoice(_invoice(), billing_currency="UZS")


@pytest.mark.parametrize("invoice_id", ["INV-1", "a", "2024.05:uz_77", "x" * 128])
def test_invoice_id_of_letters_digits_and_separators_up_to_128_characters_is_accepted(invoice_id: str) -> None:
    check_invoice(_invoice(invoice_id), billing_currency="UZS")


@pytest.mark.parametrize("invoice_id", ["", " ", "INV 1", "-INV-1", "INV/1", "счёт-1", "x" * 129])
def test_missing_or_malformed_invoice_id_is_invalid_argument_on_invoice_id(invoice_id: str) -> None:
    assert _invoice_violations(_invoice(invoice_id)) == ["invoice.invoice_id"]


def test_invoice_id_with_a_trailing_line_break_is_invalid_argument_on_invoice_id() -> None:
    assert _invoice_violations(_invoice("INV-1\n")) == ["invoice.invoice_id"]


@pytest.mark.parametrize("value", ["0", "0.00", "-1", "-120000.00", "NaN", "Infinity"])
def test_zero_negative_or_non_finite_invoice_amount_is_invalid_argument_on_amount(value: str) -> None:
    assert _invoice_violations(_invoice(value=value)) == ["invoice.amount"]


def test_smallest_positive_invoice_amount_is_accepted() -> None:
    check_invoice(_invoice(value="0.01"), billing_currency="UZS")


@pytest.mark.parametrize("currency", ["", "uzs", "UZ", "UZSS", "U2S", "ЁЁЁ"])
def test_malformed_invoice_currency_is_invalid_argument_on_currency_code(currency: str) -> None:
    assert _invoice_violations(_invoice(currency=currency)) == ["invoice.amount.currency_code"]


def test_invoice_currency_with_a_trailing_line_break_is_invalid_argument_on_currency_code() -> None:
    assert _invoice_violations(_invoice(currency="UZS\n")) == ["invoice.amount.currency_code"]


def test_invoice_without_issue_date_is_invalid_argument_on_issue_date() -> None:
    assert _invoice_violations(_invoice(issue=None)) == ["invoice.issue_date"]


def test_invoice_without_due_date_is_invalid_argument_on_due_date() -> None:
    assert _invoice_violations(_invoice(due=None)) == ["invoice.due_date"]


def test_invoice_due_before_it_was_issued_is_invalid_argument_on_due_date() -> None:
    assert _invoice_violations(_invoice(issue=date(2024, 5, 1), due=date(2024, 4, 30))) == ["invoice.due_date"]


def test_invoice_due_on_its_issue_day_is_accepted() -> None:
    check_invoice(_invoice(issue=date(2024, 5, 1), due=date(2024, 5, 1)), billing_currency="UZS")


def test_every_bad_invoice_field_is_reported_at_once() -> None:
    invoice = Invoice("", Amount(Decimal(0), "som"), None, None)
    assert sorted(_invoice_violations(invoice)) == [
        "invoice.amount",
        "invoice.amount.currency_code",
        "invoice.due_date",
        "invoice.invoice_id",
        "invoice.issue_date",
    ]


def test_invoice_in_another_currency_than_the_customers_is_failed_precondition_currency_mismatch() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        check_invoice(_invoice(currency="USD"), billing_currency="UZS")
    assert raised.value.reason == "CURRENCY_MISMATCH"
    assert raised.value.metadata == {"billing_currency": "UZS", "currency": "USD"}


def test_invoice_of_a_customer_without_billing_currency_is_accepted_in_any_currency() -> None:
    check_invoice(_invoice(currency="VND"), billing_currency=None)


def test_malformed_invoice_is_invalid_argument_even_when_its_currency_also_mismatches() -> None:
    with pytest.raises(InvalidArgument):
        check_invoice(_invoice(value="-5", currency="USD"), billing_currency="UZS")


# check_payment -------------------------------------------------------------------------------------


def test_well_formed_payment_in_the_billing_currency_is_accepted() -> None:
    check_payment(_payment(), invoice=None, billing_currency="UZS")


@pytest.mark.parametrize("payment_id", ["", "PAY 77", "_PAY", "PAY#77", "x" * 129])
def test_missing_or_malformed_payment_id_is_invalid_argument_on_payment_id(payment_id: str) -> None:
    assert _payment_violations(_payment(payment_id)) == ["payment.payment_id"]


@pytest.mark.parametrize("value", ["0", "-0.01", "NaN", "-Infinity"])
def test_zero_negative_or_non_finite_payment_amount_is_invalid_argument_on_amount(value: str) -> None:
    assert _payment_violations(_payment(value=value)) == ["payment.amount"]


@pytest.mark.parametrize("currency", ["", "usd", "US", "USDT"])
def test_malformed_payment_currency_is_invalid_argument_on_currency_code(currency: str) -> None:
    assert _payment_violations(_payment(currency=currency)) == ["payment.amount.currency_code"]


def test_payment_without_date_is_invalid_argument_on_paid_date() -> None:
    assert _payment_violations(_payment(paid_date=None)) == ["payment.paid_date"]


def test_every_bad_payment_field_is_reported_at_once() -> None:
    payment = Payment("", "INV-1", Amount(Decimal(-1), "x"), None)
    assert sorted(_payment_violations(payment)) == [
        "payment.amount",
        "payment.amount.currency_code",
        "payment.paid_date",
        "payment.payment_id",
    ]


def test_payment_for_an_invoice_is_checked_against_the_invoices_currency() -> None:
    dollar_invoice = _invoice(currency="USD")
    check_payment(_payment(currency="USD"), invoice=dollar_invoice, billing_currency="UZS")


def test_payment_in_another_currency_than_its_invoice_is_failed_precondition_currency_mismatch() -> None:
    dollar_invoice = _invoice(currency="USD")
    with pytest.raises(FailedPrecondition) as raised:
        check_payment(_payment(currency="UZS"), invoice=dollar_invoice, billing_currency="UZS")
    assert raised.value.reason == "CURRENCY_MISMATCH"
    assert raised.value.metadata == {"billing_currency": "USD", "currency": "UZS"}


def test_payment_without_invoice_in_another_currency_than_the_customers_is_currency_mismatch() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        check_payment(_payment(currency="EUR"), invoice=None, billing_currency="UZS")
    assert raised.value.reason == "CURRENCY_MISMATCH"


# is_late -------------------------------------------------------------------------------------------


def test_payment_after_the_due_date_is_late() -> None:
    assert is_late(_payment(paid_date=date(2024, 5, 21)), _invoice(due=date(2024, 5, 20)))


def test_payment_on_the_due_date_is_not_late() -> None:
    assert not is_late(_payment(paid_date=date(2024, 5, 20)), _invoice(due=date(2024, 5, 20)))


def test_payment_before_the_due_date_is_not_late() -> None:
    assert not is_late(_payment(paid_date=date(2024, 5, 2)), _invoice(due=date(2024, 5, 20)))


def test_payment_without_invoice_is_never_late() -> None:
    assert not is_late(_payment(paid_date=date(2030, 1, 1)), None)


# summarize: outstanding debt -----------------------------------------------------------------------


def test_customer_without_billing_facts_owes_nothing_and_has_no_spend() -> None:
    summary = summarize([], [], currency="UZS", today=TODAY)
    assert (summary.outstanding_debt, summary.days_overdue, summary.late_payment_count) == (0, 0, 0)
    assert (summary.average_monthly_spend, summary.months_billed) == (Decimal("0.00"), 0)


def test_summary_is_in_the_customers_billing_currency() -> None:
    assert summarize([_invoice()], [], currency="UZS", today=TODAY).currency == "UZS"


def test_outstanding_debt_sums_the_unpaid_invoices() -> None:
    invoices = [_invoice("A", "100.00"), _invoice("B", "250.50")]
    assert summarize(invoices, [], currency="UZS", today=TODAY).outstanding_debt == Decimal("350.50")


def test_fully_paid_invoice_adds_nothing_to_the_debt() -> None:
    invoices = [_invoice("A", "100.00", paid="100.00"), _invoice("B", "40.00")]
    assert summarize(invoices, [], currency="UZS", today=TODAY).outstanding_debt == Decimal("40.00")


def test_partly_paid_invoice_adds_only_its_remainder_to_the_debt() -> None:
    invoices = [_invoice("A", "100.00", paid="30.00")]
    assert summarize(invoices, [], currency="UZS", today=TODAY).outstanding_debt == Decimal("70.00")


def test_overpaid_invoice_does_not_reduce_the_debt_of_other_invoices() -> None:
    invoices = [_invoice("A", "100.00", paid="150.00"), _invoice("B", "40.00")]
    assert summarize(invoices, [], currency="UZS", today=TODAY).outstanding_debt == Decimal("40.00")


def test_overpaid_invoice_has_nothing_unpaid_rather_than_a_negative_remainder() -> None:
    assert _invoice("A", "100.00", paid="150.00").unpaid == 0


def test_overpaid_invoice_alone_leaves_no_debt() -> None:
    invoices = [_invoice("A", "100.00", paid="150.00")]
    assert summarize(invoices, [], currency="UZS", today=TODAY).outstanding_debt == 0


# summarize: days overdue ---------------------------------------------------------------------------


def test_days_overdue_count_from_the_oldest_unpaid_invoice_past_due() -> None:
    invoices = [_invoice("A", due=date(2024, 5, 20)), _invoice("B", due=date(2024, 4, 20))]
    assert summarize(invoices, [], currency="UZS", today=TODAY).days_overdue == (TODAY - date(2024, 4, 20)).days


def test_paid_invoice_past_due_does_not_count_for_days_overdue() -> None:
    invoices = [
        _invoice("OLD", issue=date(2024, 1, 1), due=date(2024, 1, 20), paid="120000.00"),
        _invoice("NEW", issue=date(2024, 5, 1), due=date(2024, 5, 20)),
    ]
    assert summarize(invoices, [], currency="UZS", today=TODAY).days_overdue == (TODAY - date(2024, 5, 20)).days


def test_partly_paid_invoice_past_due_counts_for_days_overdue() -> None:
    invoices = [_invoice("A", "100.00", due=date(2024, 6, 5), paid="99.99")]
    assert summarize(invoices, [], currency="UZS", today=TODAY).days_overdue == 10


def test_invoice_due_today_is_not_overdue() -> None:
    invoices = [_invoice("A", issue=date(2024, 6, 1), due=TODAY)]
    assert summarize(invoices, [], currency="UZS", today=TODAY).days_overdue == 0


def test_invoice_due_after_today_is_not_overdue_even_when_unpaid() -> None:
    invoices = [_invoice("A", issue=date(2024, 6, 1), due=date(2024, 6, 30))]
    summary = summarize(invoices, [], currency="UZS", today=TODAY)
    assert summary.days_overdue == 0
    assert summary.outstanding_debt == Decimal("120000.00")


def test_invoice_due_yesterday_is_one_day_overdue() -> None:
    invoices = [_invoice("A", issue=date(2024, 6, 1), due=TODAY - timedelta(days=1))]
    assert summarize(invoices, [], currency="UZS", today=TODAY).days_overdue == 1


def test_invoice_due_later_does_not_hide_an_older_overdue_one() -> None:
    invoices = [
        _invoice("FUTURE", issue=date(2024, 6, 1), due=date(2024, 7, 1)),
        _invoice("PAST", issue=date(2024, 5, 1), due=date(2024, 6, 10)),
    ]
    assert summarize(invoices, [], currency="UZS", today=TODAY).days_overdue == 5


# summarize: late payments --------------------------------------------------------------------------


def test_late_payment_count_counts_late_payments_only() -> None:
    payments = [
        _payment("P1", paid_date=date(2024, 5, 25), late=True),
        _payment("P2", paid_date=date(2024, 4, 25), late=True),
        _payment("P3", paid_date=date(2024, 3, 15), late=False),
    ]
    assert summarize([], payments, currency="UZS", today=TODAY).late_payment_count == 2


def test_late_payment_exactly_365_days_ago_still_counts() -> None:
    payments = [_payment(paid_date=TODAY - timedelta(days=365), late=True)]
    assert summarize([], payments, currency="UZS", today=TODAY).late_payment_count == 1


def test_late_payment_older_than_365_days_does_not_count() -> None:
    payments = [_payment(paid_date=TODAY - timedelta(days=366), late=True)]
    assert summarize([], payments, currency="UZS", today=TODAY).late_payment_count == 0


# summarize: average monthly spend ------------------------------------------------------------------


def test_average_monthly_spend_adds_up_the_invoices_issued_in_the_same_month() -> None:
    invoices = [
        _invoice("MAY-A", "100.00", issue=date(2024, 5, 1), due=date(2024, 5, 20)),
        _invoice("MAY-B", "50.00", issue=date(2024, 5, 31), due=date(2024, 6, 10)),
        _invoice("APR", "50.00", issue=date(2024, 4, 10), due=date(2024, 4, 30)),
    ]
    summary = summarize(invoices, [], currency="UZS", today=TODAY)
    assert summary.average_monthly_spend == Decimal("100.00")
    assert summary.months_billed == 2


def test_average_monthly_spend_counts_billed_amounts_whether_paid_or_not() -> None:
    invoices = [
        _invoice("MAY", "100.00", issue=date(2024, 5, 1), due=date(2024, 5, 20), paid="100.00"),
        _invoice("APR", "200.00", issue=date(2024, 4, 1), due=date(2024, 4, 20)),
    ]
    assert summarize(invoices, [], currency="UZS", today=TODAY).average_monthly_spend == Decimal("150.00")


def test_average_monthly_spend_is_taken_over_the_last_six_billed_months_only() -> None:
    old = [_invoice(f"OLD-{m}", "9000.00", issue=date(2023, m, 5), due=date(2023, m, 5)) for m in (11, 12)]
    recent = [_invoice(f"NEW-{m}", "60.00", issue=date(2024, m, 5), due=date(2024, m, 5)) for m in range(1, 7)]
    summary = summarize(old + recent, [], currency="UZS", today=TODAY)
    assert summary.average_monthly_spend == Decimal("60.00")
    assert summary.months_billed == 6


def test_months_without_invoices_are_skipped_not_averaged_as_zero() -> None:
    invoices = [
        _invoice("JUN", "100.00", issue=date(2024, 6, 1), due=date(2024, 6, 20)),
        _invoice("JAN", "300.00", issue=date(2024, 1, 1), due=date(2024, 1, 20)),
    ]
    summary = summarize(invoices, [], currency="UZS", today=TODAY)
    assert summary.average_monthly_spend == Decimal("200.00")
    assert summary.months_billed == 2


def test_invoice_issued_after_today_does_not_count_towards_spend() -> None:
    invoices = [
        _invoice("MAY", "100.00", issue=date(2024, 5, 1), due=date(2024, 5, 20)),
        _invoice("JUL", "900.00", issue=date(2024, 7, 1), due=date(2024, 7, 20)),
        _invoice("TOMORROW", "900.00", issue=TODAY + timedelta(days=1), due=date(2024, 7, 20)),
    ]
    summary = summarize(invoices, [], currency="UZS", today=TODAY)
    assert summary.average_monthly_spend == Decimal("100.00")
    assert summary.months_billed == 1


def test_invoice_issued_today_counts_towards_spend() -> None:
    invoices = [_invoice("TODAY", "80.00", issue=TODAY, due=TODAY)]
    assert summarize(invoices, [], currency="UZS", today=TODAY).average_monthly_spend == Decimal("80.00")


def test_average_monthly_spend_is_rounded_to_cents() -> None:
    invoices = [
        _invoice(f"M{m}", "100.00" if m == 4 else "0.01", issue=date(2024, m, 1), due=date(2024, m, 1))
        for m in (4, 5, 6)
    ]
    average = summarize(invoices, [], currency="UZS", today=TODAY).average_monthly_spend
    assert average == Decimal("33.34")
    assert average.as_tuple().exponent == -2


def test_twelve_billed_months_report_six_months_billed() -> None:
    invoices = [_invoice(f"M{m}", "10.00", issue=date(2023, m, 3), due=date(2023, m, 3)) for m in range(1, 13)]
    assert summarize(invoices, [], currency="UZS", today=TODAY).months_billed == 6


# summarize: invariants -----------------------------------------------------------------------------

_cents = st.integers(min_value=1, max_value=10**9).map(lambda c: Decimal(c).scaleb(-2))
_days = st.dates(min_value=date(2022, 1, 1), max_value=date(2025, 12, 31))


@st.composite
def _invoices(draw: st.DrawFn) -> Invoice:
    issue = draw(_days)
    due = issue + timedelta(days=draw(st.integers(min_value=0, max_value=60)))
    value = draw(_cents)
    paid = draw(st.integers(min_value=0, max_value=2 * 10**9).map(lambda c: Decimal(c).scaleb(-2)))
    return Invoice(f"INV-{draw(st.integers(0, 10**6))}", Amount(value, "UZS"), issue, due, paid)


_invoice_lists = st.lists(_invoices(), max_size=20)


@given(_invoice_lists, _days)
def test_outstanding_debt_is_never_negative_nor_more_than_was_billed(invoices: list[Invoice], today: date) -> None:
    debt = summarize(invoices, [], currency="UZS", today=today).outstanding_debt
    assert 0 <= debt <= sum((i.amount.value for i in invoices), Decimal(0))


@given(_invoice_lists, _days)
def test_paying_every_invoice_in_full_leaves_no_debt_and_nothing_overdue(invoices: list[Invoice], today: date) -> None:
    settled = [replace(i, paid=i.amount.value) for i in invoices]
    summary = summarize(settled, [], currency="UZS", today=today)
    assert summary.outstanding_debt == 0
    assert summary.days_overdue == 0


@given(_invoice_lists, _days)
def test_days_overdue_are_never_negative_and_zero_only_when_nothing_unpaid_is_past_due(
    invoices: list[Invoice], today: date
) -> None:
    days_overdue = summarize(invoices, [], currency="UZS", today=today).days_overdue
    anything_overdue = any(i.unpaid > 0 and i.due_date is not None and i.due_date < today for i in invoices)
    assert days_overdue >= 0
    assert (days_overdue > 0) == anything_overdue


@given(_invoice_lists, _days)
def test_average_monthly_spend_lies_between_the_smallest_and_largest_month_billed(
    invoices: list[Invoice], today: date
) -> None:
    summary = summarize(invoices, [], currency="UZS", today=today)
    totals: dict[date, Decimal] = {}
    for invoice in invoices:
        if invoice.issue_date is not None and invoice.issue_date <= today:
            month = invoice.issue_date.replace(day=1)
            totals[month] = totals.get(month, Decimal(0)) + invoice.amount.value
    assert summary.months_billed == min(len(totals), 6)
    if totals:
        assert min(totals.values()) - Decimal("0.01") <= summary.average_monthly_spend <= max(totals.values())
    else:
        assert summary.average_monthly_spend == 0


# Amounts, invoices named by payments, and the payment as recorded ------------------------------------


def test_an_amount_in_cents_is_kept_as_given() -> None:
    assert amount_in_cents(Decimal("120000.50"), "UZS", "invoice.amount") == Amount(Decimal("120000.50"), "UZS")


def test_an_amount_finer_than_a_cent_is_invalid_naming_its_field() -> None:
    with pytest.raises(InvalidArgument) as raised:
        amount_in_cents(Decimal("10.005"), "UZS", "payment.amount")
    assert [v.field for v in raised.value.violations] == ["payment.amount"]


def test_a_payment_for_an_invoice_the_customer_does_not_have_is_failed_precondition() -> None:
    with pytest.raises(FailedPrecondition) as raised:
        ensure_invoice_found(_payment(invoice_id="INV-404"), None)
    assert raised.value.reason == "INVOICE_NOT_FOUND"
    assert raised.value.metadata == {"invoice_id": "INV-404"}


def test_a_payment_for_no_invoice_needs_none() -> None:
    ensure_invoice_found(_payment(invoice_id=""), None)


def test_a_payment_recorded_after_its_due_date_is_marked_late_with_its_record_time() -> None:
    now = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)
    recorded = recorded_payment(_payment(paid_date=date(2024, 5, 21)), _invoice(due=date(2024, 5, 20)), now=now)
    assert (recorded.late, recorded.create_time) == (True, now)


def test_a_payment_recorded_on_time_is_not_late() -> None:
    now = datetime(2024, 6, 1, tzinfo=UTC)
    recorded = recorded_payment(_payment(paid_date=date(2024, 5, 20)), _invoice(due=date(2024, 5, 20)), now=now)
    assert recorded.late is False
