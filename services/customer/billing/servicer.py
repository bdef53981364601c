"""`crm.customer.v1.BillingService`: billing facts in, a customer's billing summary out."""

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import Database
from chassis.idempotency import IdempotentRunner
from chassis.names import CUSTOMER
from crm.customer.v1 import billing_pb2, billing_pb2_grpc
from services.customer.billing.mapping import (
    BILLING_SUMMARY,
    invoice_from_proto,
    invoice_to_proto,
    payment_from_proto,
    payment_to_proto,
    summary_to_proto,
)
from services.customer.billing.use_cases import BillingFacts
from services.customer.request_answers import idempotency_keys

# Handlers neither read nor write through the context: requests and answers are their arguments.
Context = grpc.aio.ServicerContext[Message, Message]


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    """The billing part's gRPC face; recording is retryable, once per request id."""

    def __init__(self, database: Database, facts: BillingFacts) -> None:
        self._database = database
        self._facts = facts
        self._once = IdempotentRunner(database, idempotency_keys)

    async def RecordInvoice(self, request: billing_pb2.RecordInvoiceRequest, context: Context) -> billing_pb2.Invoice:
        customer_id = CUSTOMER.parse_uuid(request.parent, "parent")
        invoice = invoice_from_proto(request.invoice)

        async def record(session: AsyncSession) -> billing_pb2.Invoice:
            return invoice_to_proto(customer_id, await self._facts.record_invoice(session, customer_id, invoice))

        return await self._once.run(request, billing_pb2.Invoice, record)

    async def RecordPayment(self, request: billing_pb2.RecordPaymentRequest, context: Context) -> billing_pb2.Payment:
        customer_id = CUSTOMER.parse_uuid(request.parent, "parent")
        payment = payment_from_proto(request.payment)

        async def record(session: AsyncSession) -> billing_pb2.Payment:
            return payment_to_proto(customer_id, await self._facts.record_payment(session, customer_id, payment))

        return await self._once.run(request, billing_pb2.Payment, record)

    async def GetBillingSummary(
        self, request: billing_pb2.GetBillingSummaryRequest, context: Context
    ) -> billing_pb2.BillingSummary:
        customer_id = BILLING_SUMMARY.parse_uuid(request.name)
        async with self._database.transaction() as session:
            summary = await self._facts.summary(session, customer_id)
        return summary_to_proto(customer_id, summary)
