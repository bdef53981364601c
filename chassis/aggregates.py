"""The aggregate types events are written under in the outbox (the `aggregatetype` column Debezium's
outbox router routes by). Writers and erasure name them from here, so that a renamed type cannot
leave one writer's events behind when an aggregate's payloads are emptied."""

from enum import StrEnum


class AggregateType(StrEnum):
    """What an event is about; its aggregate id is the resource name (`customers/{customer}`)."""

    CUSTOMER = "customer"
    """A customer with its lines, consent, usage, billing and segments (`customers/{customer}`)."""
    LOYALTY_ACCOUNT = "loyalty_account"
    """A customer's points account (`accounts/{account}`)."""
    COMPLAINT = "complaint"
    """A complaint ticket with its notes, history, SLA and compensation (`complaints/{complaint}`)."""
    PRODUCT_OFFERING = "product_offering"
    """A tariff plan or add-on bundle of the offers catalog with its versions (`plans/{plan}`, `bundles/{bundle}`)."""
