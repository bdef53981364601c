"""The loyalty service's events applied to the offers database: the tier of each customer's account,
which loyalty-linked offers are for. An account is `accounts/{account}`, its id the customer's.

Each event runs inside the consumer's transaction that records it as applied (exactly once); events
whose payload a later erasure emptied are skipped."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock
from chassis.event_consumer import EventHandler
from chassis.names import CUSTOMER, ResourcePattern
from crm.common.v1 import events_pb2 as common_events_pb2
from crm.loyalty.v1 import events_pb2 as loyalty_events_pb2
from services.offers import customer_profile_store

CONSUMER_NAME = "offers"
PRODUCER_NAME = "loyalty"
ACCOUNT = ResourcePattern("accounts/{account}")
EVENT_TYPES = (
    loyalty_events_pb2.AccountOpened.DESCRIPTOR.full_name,
    loyalty_events_pb2.TierChanged.DESCRIPTOR.full_name,
    loyalty_events_pb2.AccountClosed.DESCRIPTOR.full_name,
)
"""The loyalty events the offers service reads."""


def loyalty_event_handler(clock: Clock) -> EventHandler:
    """The consumer's handler: applies each loyalty event at the time `clock` tells."""

    async def apply(session: AsyncSession, event: common_events_pb2.Event) -> None:
        await apply_loyalty_event(session, event, clock.now())

    return apply


async def apply_loyalty_event(session: AsyncSession, event: common_events_pb2.Event, now: datetime) -> None:
    """Applies one loyalty event to the read model at `now`."""
    if not event.payload.value:
        return
    if event.event_type == EVENT_TYPES[0]:
        opened = loyalty_events_pb2.AccountOpened()
        event.payload.Unpack(opened)
        customer_id = CUSTOMER.parse_uuid(opened.account.customer, "account.customer")
        await customer_profile_store.open_account(session, opened.account.name, customer_id, opened.account.tier, now)
    elif event.event_type == EVENT_TYPES[1]:
        changed = loyalty_events_pb2.TierChanged()
        event.payload.Unpack(changed)
        if not await customer_profile_store.change_tier(session, changed.account, changed.tier, now):
            # The account opened before this consumer's cursor: its id is the customer's.
            customer_id = ACCOUNT.parse_uuid(changed.account, "account")
            await customer_profile_store.open_account(session, changed.account, customer_id, changed.tier, now)
    elif event.event_type == EVENT_TYPES[2]:
        closed = loyalty_events_pb2.AccountClosed()
        event.payload.Unpack(closed)
        await customer_profile_store.close_account(session, closed.account)
