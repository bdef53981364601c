"""Invoices and payments; every query is keyed by the customer."""

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.billing.rules import Amount, Invoice, Payment

# Billing facts older than this matter only while still unpaid.
HISTORY_DAYS = 400


async def billing_currency(session: AsyncSession, customer_id: uuid.UUID) -> str | None:
    """The currency the customer is billed in (that of their invoices), if any invoice exists."""
    row = (
        await session.execute(text("SELECT currency FROM invoices WHERE customer_id = :c LIMIT 1"), {"c": customer_id})
    ).first()
    return row.currency if row else None


async def find_invoice(session: AsyncSession, customer_id: uuid.UUID, invoice_id: str) -> Invoice | None:
    """One invoice of the customer."""
    row = (
        await session.execute(
            text("SELECT * FROM invoices WHERE customer_id = :c AND invoice_id = :i"),
            {"c": customer_id, "i": invoice_id},
        )
    ).first()
    return _invoice(row) if row else None


async def insert_invoice(session: AsyncSession, customer_id: uuid.UUID, invoice: Invoice, now: datetime) -> bool:
    """Stores an invoice; False when the customer already has one with that id."""
    result = await session.execute(
        text(
            "INSERT INTO invoices (customer_id, invoice_id, currency, amount, issue_date, due_date, create_time) "
            "VALUES (:c, :i, :currency, :amount, :issue, :due, :now) ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {
            "c": customer_id,
            "i": invoice.invoice_id,
            "currency": invoice.amount.currency,
            "amount": invoice.amount.value,
            "issue": invoice.issue_date,
            "due": invoice.due_date,
            "now": now,
        },
    )
    return result.first() is not None


async def insert_payment(session: AsyncSession, customer_id: uuid.UUID, payment: Payment, now: datetime) -> bool:
    """Stores a payment and adds it to its invoice's paid amount; False when the id is taken."""
    result = await session.execute(
        text(
            "INSERT INTO payments "
            "(customer_id, payment_id, invoice_id, currency, amount, paid_date, late, create_time) "
            "VALUES (:c, :p, :i, :currency, :amount, :paid_date, :late, :now) ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {
            "c": customer_id,
            "p": payment.payment_id,
            "i": payment.invoice_id,
            "currency": payment.amount.currency,
            "amount": payment.amount.value,
            "paid_date": payment.paid_date,
            "late": payment.late,
            "now": now,
        },
    )
    if result.first() is None:
        return False
    if payment.invoice_id:
        await session.execute(
            text("UPDATE invoices SET paid = paid + :amount WHERE customer_id = :c AND invoice_id = :i"),
            {"amount": payment.amount.value, "c": customer_id, "i": payment.invoice_id},
        )
    return True


async def recent_invoices(session: AsyncSession, customer_id: uuid.UUID, today: date) -> list[Invoice]:
    """Invoices of the last ~13 months and every older one still unpaid."""
    rows = await session.execute(
        text(
            "SELECT * FROM invoices WHERE customer_id = :c AND issue_date >= :since "
            "UNION ALL SELECT * FROM invoices WHERE customer_id = :c AND issue_date < :since AND paid < amount"
        ),
        {"c": customer_id, "since": today - timedelta(days=HISTORY_DAYS)},
    )
    return [_invoice(row) for row in rows]


async def recent_payments(session: AsyncSession, customer_id: uuid.UUID, today: date) -> list[Payment]:
    """Payments of the last ~13 months."""
    rows = await session.execute(
        text("SELECT * FROM payments WHERE customer_id = :c AND paid_date >= :since"),
        {"c": customer_id, "since": today - timedelta(days=HISTORY_DAYS)},
    )
    return [
        Payment(row.payment_id, row.invoice_id, Amount(row.amount, row.currency), row.paid_date, row.late)
        for row in rows
    ]


def _invoice(row: Row[Any]) -> Invoice:
    return Invoice(
        invoice_id=row.invoice_id,
        amount=Amount(row.amount, row.currency),
        issue_date=row.issue_date,
        due_date=row.due_date,
        paid=row.paid,
        create_time=row.create_time,
    )
