"""Keeps usage profiles current and announced, in the background.

Ingestion only stores records (the hot path). The folder folds stored records into monthly profiles
in large chunks, marking the line-months it changed (`dirty`); the publisher takes marked rows
(skipping rows another replica holds), writes one MonthlyUsageUpdated each and clears the marks in
one transaction: every change is folded once and announced once, shortly after it is counted.
"""

import asyncio
import logging

from chassis.database import Database
from chassis.outbox import NewEvent, append_events
from crm.customer.v1 import events_pb2
from services.customer import usage_store
from services.customer.mapping import customer_name
from services.customer.usage_servicer import monthly_usage_to_proto

log = logging.getLogger("crm.usage")
PUBLISH_BATCH = 1000


async def fold_pending(database: Database) -> int:
    """Folds stored records into profiles until none is left below the horizon; returns how many."""
    total = 0
    while True:
        async with database.transaction() as session:
            folded = await usage_store.fold_chunk(session)
        total += folded
        if folded < usage_store.FOLD_CHUNK:
            return total


async def publish_changed_months(database: Database, limit: int = PUBLISH_BATCH) -> int:
    """Writes events for up to `limit` changed line-months; returns how many."""
    async with database.transaction() as session:
        months = await usage_store.take_dirty_months(session, limit)
        await append_events(
            session,
            [
                NewEvent(
                    "customer",
                    customer_name(month.customer_id),
                    events_pb2.MonthlyUsageUpdated(usage=monthly_usage_to_proto(month)),
                )
                for month in months
            ],
        )
        return len(months)


class UsagePublisher:
    """Background task that keeps folding records and announcing changed line-months."""

    def __init__(self, database: Database, interval_seconds: float = 0.2) -> None:
        self._database = database
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts announcing in the background."""
        self._task = asyncio.create_task(self._run(), name="usage-publisher")

    async def stop(self) -> None:
        """Stops; marked rows are announced after the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await fold_pending(self._database)
                published = await publish_changed_months(self._database)
            except Exception:
                log.warning("folding or announcing usage failed; retrying", exc_info=True)
                published = 0
            if published < PUBLISH_BATCH:
                await asyncio.sleep(self._interval)
