"""The one place where any part of the service looks up or locks a customer or a line: usage, billing
and segments (and the customers' own use cases) come through here, so that "does this customer
exist?" has one answer, and NOT_FOUND one shape."""

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.errors import not_found
from chassis.names import CUSTOMER, SUBSCRIPTION
from services.customer.customers import store
from services.customer.customers.lifecycle import Customer
from services.customer.customers.lines import Subscription


async def existing_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    """The customer; NOT_FOUND when absent or deleted."""
    customer = await store.get_customer(session, customer_id)
    if customer is None:
        raise not_found("customer", CUSTOMER.format(customer_id))
    return customer


async def lock_existing_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    """The customer, locked until the transaction ends, so that changes to one customer queue up
    behind each other (and their events keep their order); NOT_FOUND when absent or deleted."""
    customer = await store.lock_customer(session, customer_id)
    if customer is None:
        raise not_found("customer", CUSTOMER.format(customer_id))
    return customer


async def lock_customer_if_present(session: AsyncSession, customer_id: uuid.UUID) -> Customer | None:
    """The customer, locked until the transaction ends; None when absent or deleted (for background
    work, which forgets what it kept about such a customer instead of failing)."""
    return await store.lock_customer(session, customer_id)


async def lock_customer_for_erasure(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    """The customer, deleted or not (a deleted customer's data is still held), locked until the
    transaction ends; NOT_FOUND when it never existed."""
    customer = await store.lock_customer_for_erasure(session, customer_id)
    if customer is None:
        raise not_found("customer", CUSTOMER.format(customer_id))
    return customer


async def existing_line(session: AsyncSession, customer_id: uuid.UUID, subscription_id: uuid.UUID) -> Subscription:
    """One line of the customer; NOT_FOUND when the customer has no such line."""
    subscription = await store.get_subscription(session, customer_id, subscription_id)
    if subscription is None:
        raise not_found("subscription", SUBSCRIPTION.format(customer_id, subscription_id))
    return subscription


async def first_activation_date(session: AsyncSession, customer_id: uuid.UUID) -> date | None:
    """When the customer's earliest line was activated (the start of their tenure); None without lines."""
    return await store.first_activation_date(session, customer_id)
