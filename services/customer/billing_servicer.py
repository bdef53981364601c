"""`crm.customer.v1.BillingService`: billing facts in, a customer's billing summary out."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import grpc
from google.type import money_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import Database
from chassis.errors import AlreadyExists, FailedPrecondition, invalid_field, not_found
from chassis.idempotency import IdempotentRunner
from chassis.outbox import append_event
from chassis.wellknown import decimal_to_money, money_to_decimal
from crm.customer.v1 import billing_pb2, billing_pb2_grpc, events_pb2
from services.customer import billing, billing_store, store
from services.customer.mapping import customer_name, date_from_proto, date_to_proto, parse_customer_name, timestamp

Context = grpc.aio.ServicerContext


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    """Records invoices and payments from the billing system and summarises them."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._once = IdempotentRunner(database, store.idempotency_keys)

    async def RecordInvoice(self, request: billing_pb2.RecordInvoiceRequest, context: Context) -> billing_pb2.Invoice:
        customer_id = parse_customer_name(request.parent, "parent")
        invoice = billing.Invoice(
            invoice_id=request.invoice.invoice_id,
            amount=_amount(request.invoice.amount, "invoice.amount"),
            issue_date=date_from_proto(request.invoice.issue_date, "invoice.issue_date"),
            due_date=date_from_proto(request.invoice.due_date, "invoice.due_date"),
        )

        async def record(session: AsyncSession) -> billing_pb2.Invoice:
            await _lock_customer(session, customer_id)
            billing.check_invoice(invoice, billing_currency=await billing_store.billing_currency(session, customer_id))
            now = datetime.now(UTC)
            if not await billing_store.insert_invoice(session, customer_id, invoice, now):
                raise AlreadyExists("INVOICE_EXISTS", f"invoice {invoice.invoice_id} was recorded before")
            message = _invoice_to_proto(customer_id, invoice, now)
            await append_event(
                session,
                aggregate_type="customer",
                aggregate_id=customer_name(customer_id),
                payload=events_pb2.InvoiceRecorded(invoice=message),
            )
            return message

        return await self._once.run(request, billing_pb2.Invoice, record)

    async def RecordPayment(self, request: billing_pb2.RecordPaymentRequest, context: Context) -> billing_pb2.Payment:
        customer_id = parse_customer_name(request.parent, "parent")
        payment = billing.Payment(
            payment_id=request.payment.payment_id,
            invoice_id=request.payment.invoice_id.strip(),
            amount=_amount(request.payment.amount, "payment.amount"),
            paid_date=date_from_proto(request.payment.paid_date, "payment.paid_date"),
        )

        async def record(session: AsyncSession) -> billing_pb2.Payment:
            await _lock_customer(session, customer_id)
            invoice = None
            if payment.invoice_id:
                invoice = await billing_store.find_invoice(session, customer_id, payment.invoice_id)
                if invoice is None:
                    raise FailedPrecondition(
                        "INVOICE_NOT_FOUND",
                        f"the customer has no invoice {payment.invoice_id}",
                        {"invoice_id": payment.invoice_id},
                    )
            currency = await billing_store.billing_currency(session, customer_id)
            billing.check_payment(payment, invoice=invoice, billing_currency=currency)
            recorded = billing.Payment(**{**payment.__dict__, "late": billing.is_late(payment, invoice)})
            now = datetime.now(UTC)
            if not await billing_store.insert_payment(session, customer_id, recorded, now):
                raise AlreadyExists("PAYMENT_EXISTS", f"payment {payment.payment_id} was recorded before")
            message = _payment_to_proto(customer_id, recorded, now)
            await append_event(
                session,
                aggregate_type="customer",
                aggregate_id=customer_name(customer_id),
                payload=events_pb2.PaymentRecorded(payment=message),
            )
            return message

        return await self._once.run(request, billing_pb2.Payment, record)

    async def GetBillingSummary(
        self, request: billing_pb2.GetBillingSummaryRequest, context: Context
    ) -> billing_pb2.BillingSummary:
        parent, _, leaf = request.name.rpartition("/")
        if leaf != "billingSummary":
            raise invalid_field("name", "must look like customers/{customer}/billingSummary")
        customer_id = parse_customer_name(parent, "name")
        today = datetime.now(UTC).date()
        async with self._database.transaction() as session:
            if await store.get_customer(session, customer_id) is None:
                raise not_found("customer", customer_name(customer_id))
            summary = await billing_store.billing_summary(session, customer_id, today)
        return _summary_to_proto(customer_id, summary)


async def _lock_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Billing changes of one customer queue up behind each other (debt stays consistent)."""
    if await store.lock_customer(session, customer_id) is None:
        raise not_found("customer", customer_name(customer_id))


def _amount(money: money_pb2.Money, field: str) -> billing.Amount:
    value = money_to_decimal(money)
    if value is None:
        raise invalid_field(field, "units and nanos must have the same sign")
    if value != value.quantize(Decimal("0.01")):
        raise invalid_field(field, "must not have more than two decimal places")
    return billing.Amount(value, money.currency_code)


def _money(value: Decimal, currency: str) -> money_pb2.Money:
    return decimal_to_money(value, currency)


def _invoice_to_proto(customer_id: uuid.UUID, invoice: billing.Invoice, now: datetime) -> billing_pb2.Invoice:
    return billing_pb2.Invoice(
        name=f"{customer_name(customer_id)}/invoices/{invoice.invoice_id}",
        invoice_id=invoice.invoice_id,
        amount=_money(invoice.amount.value, invoice.amount.currency),
        issue_date=date_to_proto(invoice.issue_date),
        due_date=date_to_proto(invoice.due_date),
        paid_amount=_money(invoice.paid, invoice.amount.currency),
        create_time=timestamp(now),
    )


def _payment_to_proto(customer_id: uuid.UUID, payment: billing.Payment, now: datetime) -> billing_pb2.Payment:
    return billing_pb2.Payment(
        name=f"{customer_name(customer_id)}/payments/{payment.payment_id}",
        payment_id=payment.payment_id,
        invoice_id=payment.invoice_id,
        amount=_money(payment.amount.value, payment.amount.currency),
        paid_date=date_to_proto(payment.paid_date),
        late=payment.late,
        create_time=timestamp(now),
    )


def _summary_to_proto(customer_id: uuid.UUID, summary: billing.BillingSummary) -> billing_pb2.BillingSummary:
    return billing_pb2.BillingSummary(
        name=f"{customer_name(customer_id)}/billingSummary",
        outstanding_debt=_money(summary.outstanding_debt, summary.currency),
        days_overdue=summary.days_overdue,
        late_payment_count=summary.late_payment_count,
        average_monthly_spend=_money(summary.average_monthly_spend, summary.currency),
        months_billed=summary.months_billed,
    )
