"""The customer service's events, applied to the complaints database: segment changes keep the
customers' segments that routing reads (VIP to the senior queue), erasure removes the personal data
of the customer's tickets while the numbers behind the figures stay.

Each event runs inside the consumer's transaction that records it as applied (exactly once).
Events whose payload a later erasure emptied are skipped.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.event_consumer import EventHandler
from chassis.names import CUSTOMER
from chassis.outbox import erase_aggregate_payloads
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.customer.v1 import events_pb2 as customer_events_pb2
from services.complaints import store
from services.complaints.resource_names import COMPLAINT

CONSUMER_NAME = "complaints"
PRODUCER_NAME = "customer"
_SEGMENTS_CHANGED = customer_events_pb2.SegmentsChanged.DESCRIPTOR.full_name
_CUSTOMER_ERASED = customer_events_pb2.CustomerErased.DESCRIPTOR.full_name
EVENT_TYPES = (_SEGMENTS_CHANGED, _CUSTOMER_ERASED)
"""The customer events the complaints service reads."""


def customer_event_handler() -> EventHandler:
    """The consumer's handler."""
    return apply_customer_event


async def apply_customer_event(session: AsyncSession, event: common_events_pb2.Event) -> None:
    """Applies one customer event to the complaints database."""
    if not event.payload.value:
        return
    if event.event_type == _SEGMENTS_CHANGED:
        changed = customer_events_pb2.SegmentsChanged()
        event.payload.Unpack(changed)
        customer_id = CUSTOMER.parse_uuid(changed.customer, "customer")
        await store.change_segments(session, customer_id, [m.segment for m in changed.entered], list(changed.left))
    elif event.event_type == _CUSTOMER_ERASED:
        erased = customer_events_pb2.CustomerErased()
        event.payload.Unpack(erased)
        await erase_customer(session, erased.customer)


async def erase_customer(session: AsyncSession, customer: str) -> int:
    """Removes the personal data of the customer's tickets, their stored answers and the payloads of
    the events about them; returns the tickets touched."""
    customer_id = CUSTOMER.parse_uuid(customer, "customer")
    touched = await store.erase_customer_words(session, customer_id)
    await store.change_segments(session, customer_id, [], list(await store.segments_of(session, customer_id)))
    for complaint_id in await store.complaint_ids_of(session, customer_id):
        await erase_aggregate_payloads(
            session, aggregate_type=AggregateType.COMPLAINT, aggregate_id=COMPLAINT.format(complaint_id)
        )
    # Events written before tickets had an aggregate type of their own were filed under the customer.
    await erase_aggregate_payloads(session, aggregate_type=AggregateType.CUSTOMER, aggregate_id=customer)
    return touched
