"""Billing use cases over a database session: invoices and payments recorded once each and announced,
and the summary of what they say about a customer (which segments read too)."""

import uuid
from dataclasses import replace
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock, today
from chassis.errors import AlreadyExists
from crm.customer.v1 import events_pb2
from services.customer.announcements import announce
from services.customer.billing import store
from services.customer.billing.mapping import invoice_to_proto, payment_to_proto
from services.customer.billing.rules import (
    BillingSummary,
    Invoice,
    Payment,
    check_invoice,
    check_payment,
    ensure_invoice_found,
    recorded_payment,
    summarize,
)
from services.customer.customers.lookup import existing_customer, lock_existing_customer


class BillingFacts:
    """Records the billing system's invoices and payments and summarises them."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def record_invoice(self, session: AsyncSession, customer_id: uuid.UUID, invoice: Invoice) -> Invoice:
        """Records a new invoice in the customer's billing currency and announces it."""
        # Billing changes of one customer queue up behind each other, so that the debt stays consistent.
        await lock_existing_customer(session, customer_id)
        check_invoice(invoice, billing_currency=await store.billing_currency(session, customer_id))
        now = self._clock.now()
        if not await store.insert_invoice(session, customer_id, invoice, now):
            raise AlreadyExists("INVOICE_EXISTS", f"invoice {invoice.invoice_id} was recorded before")
        recorded = replace(invoice, create_time=now)
        await announce(
            session, customer_id, events_pb2.InvoiceRecorded(invoice=invoice_to_proto(customer_id, recorded)), now
        )
        return recorded

    async def record_payment(self, session: AsyncSession, customer_id: uuid.UUID, payment: Payment) -> Payment:
        """Records a new payment, for one of the customer's invoices or none, and announces it."""
        await lock_existing_customer(session, customer_id)
        invoice = await store.find_invoice(session, customer_id, payment.invoice_id) if payment.invoice_id else None
        ensure_invoice_found(payment, invoice)
        check_payment(payment, invoice=invoice, billing_currency=await store.billing_currency(session, customer_id))
        now = self._clock.now()
        recorded = recorded_payment(payment, invoice, now=now)
        if not await store.insert_payment(session, customer_id, recorded, now):
            raise AlreadyExists("PAYMENT_EXISTS", f"payment {payment.payment_id} was recorded before")
        await announce(
            session, customer_id, events_pb2.PaymentRecorded(payment=payment_to_proto(customer_id, recorded)), now
        )
        return recorded

    async def summary(self, session: AsyncSession, customer_id: uuid.UUID) -> BillingSummary:
        """The customer's billing summary today; NOT_FOUND when the customer does not exist."""
        await existing_customer(session, customer_id)
        return await billing_summary(session, customer_id, today(self._clock))


async def billing_summary(session: AsyncSession, customer_id: uuid.UUID, on: date) -> BillingSummary:
    """What the customer's billing facts say as of the day `on`."""
    currency = await store.billing_currency(session, customer_id) or ""
    invoices = await store.recent_invoices(session, customer_id, on)
    payments = await store.recent_payments(session, customer_id, on)
    return summarize(invoices, payments, currency=currency, today=on)
