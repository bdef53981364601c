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
from services.customer.usage import store
from services.customer.usage.rules import (
    DEFAULT_PROFILE_MONTHS,
    MAX_PROFILE_MONTHS,
    CustomerMonth,
    IngestTally,
    LineMonth,
    ReportedRecord,
    check_batch,
    first_month,
    profile_months,
)


class UsageProfiles:
    """Counts usage records once each and serves the monthly profiles they build."""

    def __init__(self, *, default_region: str, clock: Clock) -> None:
        self._default_region = default_region
        self._clock = clock

    async def ingest_batch(self, session: AsyncSession, records: Sequence[ReportedRecord], tally: IngestTally) -> None:
        """Checks and stores one batch in the caller's transaction (a crash counts all of its records or
        none) and adds what happened to each record to `tally`."""
        batch = check_batch(records, default_region=self._default_region, today=today(self._clock))
        stored, unknown_msisdns = await store.store_records(session, batch.records)
        tally.count_batch(batch, stored=stored, unknown_msisdns=unknown_msisdns)

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
