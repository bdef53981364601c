"""Usage use cases over a database session: records in from network mediation, profiles out, and the
monthly totals other parts read. Usage needs nothing from the other parts but the line lookup, so
that it can become a service of its own (its load is a network's, not a system of record's)."""

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock, today
from chassis.errors import invalid_field
from services.customer.customers.lookup import existing_line
from services.customer.usage import batch_store, store
from services.customer.usage.retention import kept_since
from services.customer.usage.rules import (
    DEFAULT_PROFILE_MONTHS,
    MAX_PROFILE_MONTHS,
    CustomerMonth,
    IngestTally,
    LineMonth,
    RecordChecks,
    ReportedFields,
    first_month,
    profile_months,
    stage_batch,
)
from services.customer.usage.settings import UsageSettings


class UsageProfiles:
    """Counts usage records once each and serves the monthly profiles they build."""

    def __init__(self, *, default_region: str, clock: Clock, settings: UsageSettings | None = None) -> None:
        """`settings` are read from the environment unless given."""
        self._default_region = default_region
        self._clock = clock
        self._retention_days = (settings or UsageSettings.from_environment()).record_retention_days

    async def ingest_batch(self, session: AsyncSession, records: Sequence[ReportedFields], tally: IngestTally) -> None:
        """Checks and stores one batch in the caller's transaction (a crash counts all of its records or
        none) and adds what happened to each record to `tally`. The checks run in the store, over the
        whole batch at once."""
        day = today(self._clock)
        checks = RecordChecks(self._default_region, day, kept_since(day, self._retention_days))
        stored = await batch_store.store_batch(session, stage_batch(records, checks), checks)
        tally.count_stored(records, stored, checks)

    async def line_profile(
        self, session: AsyncSession, customer_id: uuid.UUID, subscription_id: uuid.UUID, requested_months: int
    ) -> list[LineMonth]:
        """The line's last `requested_months` months (0 means the default), newest first; NOT_FOUND when
        the customer has no such line."""
        months = profile_months(requested_months)
        if months is None:
            raise invalid_field(
                "months", f"must be between 1 and {MAX_PROFILE_MONTHS} (0 means {DEFAULT_PROFILE_MONTHS})"
            )
        await existing_line(session, customer_id, subscription_id)
        return await store.months_of_line(session, subscription_id, first_month(today(self._clock), months))


async def recent_customer_months(
    session: AsyncSession, customer_id: uuid.UUID, before: date, count: int
) -> list[CustomerMonth]:
    """The customer's usage over all lines in the `count` months before `before`, newest first."""
    return await store.customer_months(session, customer_id, before, count)
