"""Stored answers of retryable requests (the chassis' request-id table), with the customer each answer
is about, so that erasure finds and drops the answers that hold a customer's data."""

import uuid
from datetime import datetime

from sqlalchemy import Column, MetaData
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.idempotency import idempotency_table
from services.customer.personal_data import CustomerData

metadata = MetaData()
idempotency_keys = idempotency_table(metadata)
# Which customer a stored answer is about, so that erasure finds the answers holding their data.
idempotency_keys.append_column(Column("customer_id", UUID(as_uuid=True)))


async def link_request_to_customer(session: AsyncSession, customer_id: uuid.UUID, request_id: str) -> None:
    """Marks the stored answer of the request being served (by the current caller, written in this
    transaction) as being about a customer."""
    await session.execute(
        idempotency_keys.update()
        .where(idempotency_keys.c.caller == current_caller().subject, idempotency_keys.c.request_id == request_id)
        .values(customer_id=customer_id)
    )


async def forget_request_answers(session: AsyncSession, customer_id: uuid.UUID, now: datetime) -> None:
    """Drops the stored answers and request fingerprints of the customer's requests. The keys stay, so
    that a retry cannot do the work again; it is refused as a reused request id instead."""
    await session.execute(
        idempotency_keys.update()
        .where(idempotency_keys.c.customer_id == customer_id)
        .values(response=None, fingerprint=b"")
    )


REQUEST_ANSWERS_DATA = CustomerData(
    part="request answers",
    tables={"idempotency_keys": "answers and fingerprints dropped; keys stay so that a retry is refused"},
    erase=forget_request_answers,
)
"""What the stored answers hold about a customer, and how they forget it."""
