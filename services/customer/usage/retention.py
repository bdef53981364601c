"""Which days raw usage records are kept for, and the daily partitions that hold them. Plain rules
over dates.

Each day's records live in a partition of `usage_records` of their own (`usage_records_20261201` holds
1 December 2026). The records stored before the table was partitioned live in one partition of every
earlier day (`usage_records_before_20261202`). Partitions are made ahead of the days they hold, and a
partition is dropped whole once every day it holds is older than the retention and all of it has been
folded into the monthly profiles.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice

PARTITIONS_CREATED_PER_RUN = 16
"""Most partitions one upkeep run makes (one short transaction each)."""
PARTITIONS_DROPPED_PER_RUN = 4
"""Most partitions one upkeep run drops (each briefly holds ingestion back while it is dropped)."""
_NAME = re.compile(r"usage_records_(before_)?(\d{8})")


@dataclass(frozen=True)
class Partition:
    """A partition of usage_records: the days from `first` (None: from the earliest) to before `end`."""

    end: date
    first: date | None

    @property
    def name(self) -> str:
        """The partition's table name, which says the days it holds."""
        if self.first is None:
            return f"usage_records_before_{self.end:%Y%m%d}"
        return f"usage_records_{self.first:%Y%m%d}"

    def holds(self, day: date) -> bool:
        """Whether records of `day` go to this partition."""
        return (self.first is None or self.first <= day) and day < self.end


def day_partition(day: date) -> Partition:
    """The partition of one day's records."""
    return Partition(end=day + timedelta(days=1), first=day)


def earlier_days_partition(end: date) -> Partition:
    """The partition of every day before `end` (the records stored before partitioning)."""
    return Partition(end=end, first=None)


def partition_named(name: str) -> Partition | None:
    """The partition a table name stands for; None for a name of neither form."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    day = datetime.strptime(match[2], "%Y%m%d").date()
    return earlier_days_partition(day) if match[1] else day_partition(day)


def kept_since(today: date, retention_days: int) -> date:
    """The oldest day whose records are kept (and accepted) when `retention_days` days are kept."""
    return today - timedelta(days=retention_days)


def days_to_create(
    partitions: Sequence[Partition], *, today: date, kept_since: date, ahead_days: int, limit: int
) -> list[date]:
    """The days from `kept_since` to `ahead_days` after today that no partition holds, at most `limit`:
    today and the days ahead first, then the kept days before today, the latest first (records
    arrive late, seldom early)."""
    ahead = [today + timedelta(days=n) for n in range(ahead_days + 1)]
    behind = [today - timedelta(days=n) for n in range(1, (today - kept_since).days + 1)]
    missing = (day for day in ahead + behind if not any(p.holds(day) for p in partitions))
    return list(islice(missing, limit))


def partitions_to_drop(partitions: Sequence[Partition], *, kept_since: date, limit: int) -> list[Partition]:
    """The partitions whose every day is before `kept_since`, the oldest first, at most `limit` (whether
    they are folded yet is the store's to tell)."""
    return sorted((p for p in partitions if p.end <= kept_since), key=lambda p: p.end)[:limit]
