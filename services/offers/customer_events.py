"""The customer service's events applied to the offers database: lines keep the local read model
that retirement needs, segments and monthly usage the one next-best actions needs, status changes when a customer
churned (the retention effect of offers), and erasure forgets the customer's
lines, segments, advice and self-given acceptances and empties the payloads of the offers service's
own events about them.

Each event runs inside the consumer's transaction that records it as applied (exactly once); events
whose payload a later erasure emptied are skipped."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.clock import Clock
from chassis.event_consumer import EventHandler
from chassis.names import CUSTOMER, SUBSCRIPTION
from chassis.outbox import erase_aggregate_payloads
from chassis.wellknown import date_from_proto, timestamp_from_proto
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.customer.v1 import customer_pb2
from crm.customer.v1 import events_pb2 as customer_events_pb2
from services.offers import customer_profile_store, line_store, offer_presentation_store

CONSUMER_NAME = "offers"
PRODUCER_NAME = "customer"
EVENT_TYPES = (
    customer_events_pb2.SubscriptionChanged.DESCRIPTOR.full_name,
    customer_events_pb2.CustomerErased.DESCRIPTOR.full_name,
    customer_events_pb2.SegmentsChanged.DESCRIPTOR.full_name,
    customer_events_pb2.CustomerUpdated.DESCRIPTOR.full_name,
    customer_events_pb2.MonthlyUsageUpdated.DESCRIPTOR.full_name,
)
"""The customer events the offers service reads."""


def customer_event_handler(clock: Clock) -> EventHandler:
    """The consumer's handler: applies each customer event at the time `clock` tells."""

    async def apply(session: AsyncSession, event: common_events_pb2.Event) -> None:
        await apply_customer_event(session, event, clock.now())

    return apply


async def apply_customer_event(session: AsyncSession, event: common_events_pb2.Event, now: datetime) -> None:
    """Applies one customer event to the read model at `now`."""
    if not event.payload.value:
        return
    if event.event_type == EVENT_TYPES[0]:
        changed = customer_events_pb2.SubscriptionChanged()
        event.payload.Unpack(changed)
        line = changed.subscription
        customer_id, subscription_id = SUBSCRIPTION.parse_uuids(line.name, "subscription.name")
        await line_store.upsert_line(
            session,
            subscription_id,
            customer_id,
            tariff_plan=line.tariff_plan_id,
            home_region=line.home_region,
            active=line.status == customer_pb2.SUBSCRIPTION_STATUS_ACTIVE,
            now=now,
        )
    elif event.event_type == EVENT_TYPES[1]:
        erased = customer_events_pb2.CustomerErased()
        event.payload.Unpack(erased)
        customer_id = CUSTOMER.parse_uuid(erased.customer, "customer")
        await line_store.forget_customer(session, customer_id)
        await customer_profile_store.forget_customer(session, customer_id)
        await offer_presentation_store.forget_customer(session, customer_id)
        await erase_aggregate_payloads(session, aggregate_type=AggregateType.CUSTOMER, aggregate_id=erased.customer)
    elif event.event_type == EVENT_TYPES[2]:
        segments = customer_events_pb2.SegmentsChanged()
        event.payload.Unpack(segments)
        await customer_profile_store.apply_segment_change(
            session,
            CUSTOMER.parse_uuid(segments.customer, "customer"),
            entered=[_segment_id(membership.segment) for membership in segments.entered],
            left=[_segment_id(segment) for segment in segments.left],
            churn_risk_score=segments.churn_risk_score,
            now=now,
        )

    elif event.event_type == EVENT_TYPES[3]:
        updated = customer_events_pb2.CustomerUpdated()
        event.payload.Unpack(updated)
        churned = updated.customer.status == customer_pb2.CUSTOMER_STATUS_CHURNED
        # The churn counts from when the customer service changed the status, not from when it is read here.
        churn_time = timestamp_from_proto(event.event_time) if churned else None
        await offer_presentation_store.record_churn(
            session, CUSTOMER.parse_uuid(updated.customer.name, "customer.name"), churn_time
        )

    elif event.event_type == EVENT_TYPES[4]:
        usage_updated = customer_events_pb2.MonthlyUsageUpdated()
        event.payload.Unpack(usage_updated)
        usage = usage_updated.usage
        customer_id, subscription_id = SUBSCRIPTION.parse_uuids(usage.subscription, "usage.subscription")
        month = date_from_proto(usage.month, "usage.month")
        if month is not None:
            await customer_profile_store.keep_month_usage(
                session, subscription_id, customer_id, month, usage.SerializeToString(deterministic=True), now
            )


def _segment_id(segment: str) -> str:
    """ "churn-risk-high" of `segments/churn-risk-high` (and of a bare id)."""
    return segment.removeprefix("segments/")
