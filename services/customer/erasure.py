"""Erasure of a customer's personal data (the right to be forgotten), across every part of the service.

Each part erases its own data (see each part's `erasure` module); this module runs them all, in one
transaction, and announces CustomerErased so that every other service erases its copy. A part added
later declares its `CustomerData` and joins `CUSTOMER_DATA`; a test fails while a table holding
customer data belongs to no declaration.
"""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock
from chassis.names import CUSTOMER
from crm.customer.v1 import events_pb2
from services.customer.announcements import EVENTS_DATA, announce
from services.customer.billing.erasure import BILLING_DATA
from services.customer.customers.erasure import CUSTOMERS_DATA
from services.customer.customers.lifecycle import Customer
from services.customer.customers.lookup import lock_customer_for_erasure
from services.customer.personal_data import CustomerData
from services.customer.request_answers import REQUEST_ANSWERS_DATA
from services.customer.segments.erasure import SEGMENTS_DATA
from services.customer.usage.erasure import USAGE_DATA

CUSTOMER_DATA: tuple[CustomerData, ...] = (
    CUSTOMERS_DATA,
    USAGE_DATA,
    BILLING_DATA,
    SEGMENTS_DATA,
    REQUEST_ANSWERS_DATA,
    EVENTS_DATA,
)
"""Every part that holds data about customers, in the order erasure runs: the customers part first
(it refuses a customer still served under contract), the events' payloads last (after every change)."""


class CustomerErasure:
    """Erases customers as of the service's clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def erase_customer(self, session: AsyncSession, customer_id: uuid.UUID) -> Customer:
        """Erases the customer's personal data in every part, deleted customer or not, and returns the
        shell that remains; CustomerErased tells every other service to erase its copy. Erasing an
        erased customer changes and announces nothing."""
        current = await lock_customer_for_erasure(session, customer_id)
        if current.erase_time is not None:
            return current
        now = self._clock.now()
        for part in CUSTOMER_DATA:
            await part.erase(session, customer_id, now)
        await announce(session, customer_id, events_pb2.CustomerErased(customer=CUSTOMER.format(customer_id)), now)
        return await lock_customer_for_erasure(session, customer_id)
