"""Keeps usage profiles current and announced, in the background.

Ingestion only stores records (the hot path). The folder folds stored records into monthly profiles
in large chunks, marking the line-months it changed (`dirty`); the publisher takes marked rows
(skipping rows another replica holds), writes one MonthlyUsageUpdated each and clears the marks in
one transaction: every change is folded once and announced once, shortly after it is counted. The
same task keeps the records' daily partitions (`partitions.PartitionUpkeep`), by the service's clock.
"""

from chassis.background import RepeatingTask
from chassis.clock import SYSTEM_CLOCK, Clock
from chassis.database import Database
from chassis.outbox import append_events
from crm.customer.v1 import events_pb2
from services.customer.announcements import customer_event
from services.customer.usage import store
from services.customer.usage.mapping import monthly_usage_to_proto
from services.customer.usage.partitions import PartitionUpkeep
from services.customer.usage.settings import UsageSettings

PUBLISH_BATCH = 1000


async def fold_pending(database: Database) -> int:
    """Folds stored records into profiles until none is left below the horizon; returns how many."""
    total = 0
    while True:
        async with database.transaction() as session:
            folded = await store.fold_chunk(session)
        total += folded
        if folded < store.FOLD_CHUNK:
            return total


async def publish_changed_months(database: Database, clock: Clock = SYSTEM_CLOCK, limit: int = PUBLISH_BATCH) -> int:
    """Writes events for up to `limit` changed line-months, stamped with `clock`'s time; returns how many."""
    async with database.transaction() as session:
        months = await store.take_dirty_months(session, limit)
        events = [
            customer_event(month.customer_id, events_pb2.MonthlyUsageUpdated(usage=monthly_usage_to_proto(month)))
            for month in months
        ]
        await append_events(session, events, now=clock.now())
        return len(months)


def usage_publisher(
    database: Database, clock: Clock, interval_seconds: float = 0.2, settings: UsageSettings | None = None
) -> RepeatingTask:
    """Background task that keeps the records' partitions, folds records and announces changed
    line-months; the usage settings are read from the environment unless given."""
    upkeep = PartitionUpkeep(database, clock, settings or UsageSettings.from_environment())

    async def keep_fold_and_announce() -> bool:
        partitions_left = await upkeep.run_if_due()
        await fold_pending(database)
        return await publish_changed_months(database, clock) >= PUBLISH_BATCH or partitions_left

    return RepeatingTask("usage-publisher", keep_fold_and_announce, interval_seconds)
