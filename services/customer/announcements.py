"""Events about a customer, written to the service's outbox in the caller's transaction.

Every part announces under one aggregate, the customer (`customers/{customer}`, lines, usage, billing
and segments included), so that the events of one customer keep their order and erasure empties all
of them at once.
"""

import uuid
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.names import CUSTOMER
from chassis.outbox import NewEvent, append_event, erase_aggregate_payloads
from services.customer.personal_data import CustomerData


def customer_event(customer_id: uuid.UUID, payload: Message) -> NewEvent:
    """An event about the customer, to write with others in one round trip."""
    return NewEvent(AggregateType.CUSTOMER, CUSTOMER.format(customer_id), payload)


async def announce(session: AsyncSession, customer_id: uuid.UUID, payload: Message, now: datetime) -> None:
    """Writes one event about the customer; call it after locking the customer's row."""
    await append_event(
        session,
        aggregate_type=AggregateType.CUSTOMER,
        aggregate_id=CUSTOMER.format(customer_id),
        payload=payload,
        now=now,
    )


async def erase_event_payloads(session: AsyncSession, customer_id: uuid.UUID, now: datetime) -> None:
    """Empties the payloads of the customer's earlier events; their envelopes keep the feed whole."""
    await erase_aggregate_payloads(
        session, aggregate_type=AggregateType.CUSTOMER, aggregate_id=CUSTOMER.format(customer_id)
    )


EVENTS_DATA = CustomerData(
    part="events",
    tables={"outbox": "payloads of the customer's events emptied; envelopes and positions stay"},
    erase=erase_event_payloads,
)
"""What the outbox holds about a customer, and how it forgets it."""
