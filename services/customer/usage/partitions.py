"""Upkeep of the daily partitions of usage records, by the service's clock: each run makes the missing
partitions of the days ahead and of the kept days, and drops the partitions that hold only days older
than the retention once they are folded. Each run does a bounded amount, one short transaction per
partition; a run that left work over is followed by another at once."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from chassis.clock import Clock, today
from chassis.database import Database
from services.customer.usage import partition_store
from services.customer.usage.retention import (
    PARTITIONS_CREATED_PER_RUN,
    PARTITIONS_DROPPED_PER_RUN,
    day_partition,
    days_to_create,
    kept_since,
    partitions_to_drop,
)
from services.customer.usage.settings import UsageSettings


@dataclass(frozen=True)
class UpkeepRun:
    """What one run did."""

    created: int
    dropped: int
    left_over: bool
    """Whether more partitions wait to be made or dropped than one run does."""


async def keep_partitions(database: Database, clock: Clock, settings: UsageSettings) -> UpkeepRun:
    """One bounded run of the upkeep as of `clock`'s time."""
    day = today(clock)
    oldest = kept_since(day, settings.record_retention_days)
    async with database.transaction() as session:
        partitions = await partition_store.existing_partitions(session)
    missing = days_to_create(
        partitions,
        today=day,
        kept_since=oldest,
        ahead_days=settings.partitions_ahead_days,
        limit=PARTITIONS_CREATED_PER_RUN + 1,
    )
    created = 0
    for missing_day in missing[:PARTITIONS_CREATED_PER_RUN]:
        async with database.transaction() as session:
            created += await partition_store.create_partition(session, day_partition(missing_day))
    expired = partitions_to_drop(partitions, kept_since=oldest, limit=PARTITIONS_DROPPED_PER_RUN + 1)
    dropped = 0
    for partition in expired[:PARTITIONS_DROPPED_PER_RUN]:
        async with database.transaction() as session:
            dropped += await partition_store.drop_partition_if_folded(session, partition)
    left_over = len(missing) > PARTITIONS_CREATED_PER_RUN or len(expired) > PARTITIONS_DROPPED_PER_RUN
    return UpkeepRun(created, dropped, left_over)


class PartitionUpkeep:
    """Runs the upkeep when it is due by the service's clock: at the first step, then every
    `partition_upkeep_interval_seconds`, and at once again while a run left work over."""

    def __init__(self, database: Database, clock: Clock, settings: UsageSettings) -> None:
        self._database = database
        self._clock = clock
        self._settings = settings
        self._due: datetime | None = None

    async def run_if_due(self) -> bool:
        """Runs the upkeep if it is due; whether work is left over for another run at once."""
        now = self._clock.now()
        if self._due is not None and now < self._due:
            return False
        # Due again after the interval even if this run fails (its database may be away for a while).
        self._due = now + timedelta(seconds=self._settings.partition_upkeep_interval_seconds)
        run = await keep_partitions(self._database, self._clock, self._settings)
        if run.left_over:
            self._due = None
        return run.left_over
