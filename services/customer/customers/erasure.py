"""What erasure (the right to be forgotten) leaves of a customer's own records.

An erased customer stays as a shell so that counts, lines and consent proofs still add up (see
`erased_customer` and `erased_subscription`). Consent records keep purpose, decision, channel, time and
the recording employee, which is what proves a decision; they hold nothing else about the person.
An erased customer cannot be changed again.
"""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from services.customer.customers import lookup, store
from services.customer.customers.lifecycle import erased_customer
from services.customer.customers.lines import ensure_erasable, erased_subscription
from services.customer.personal_data import CustomerData


async def erase_customer_records(session: AsyncSession, customer_id: uuid.UUID, now: datetime) -> None:
    """Turns the customer into its shell and removes the numbers of its lines; a customer with a line
    in service is still served under contract and is refused (FAILED_PRECONDITION)."""
    customer = await lookup.lock_customer_for_erasure(session, customer_id)
    lines = await store.all_subscriptions(session, customer_id)
    ensure_erasable(lines)
    await store.update_customer(session, erased_customer(customer, actor=current_caller().subject, now=now))
    for line in lines:
        await store.update_subscription(session, erased_subscription(line, now=now))


CUSTOMERS_DATA = CustomerData(
    part="customers",
    tables={
        "customers": "the shell stays: names become 'erased', everything else about the person goes",
        "subscriptions": "lines stay without their numbers",
        "consent_records": "kept: purpose, decision, channel, time and recorder prove each decision",
    },
    erase=erase_customer_records,
)
"""What the customers part holds about a customer, and how it erases it."""
