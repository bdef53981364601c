"""Rules of the days usage records are kept for and of their daily partitions, without a database."""

from datetime import date, timedelta

import pytest

from services.customer.usage import retention
from services.customer.usage.retention import Partition, day_partition, earlier_days_partition
from tests.unit.customer.test_customer_service_parts import INFRASTRUCTURE, SERVICE, imported_modules

TODAY = date(2026, 12, 1)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_the_retention_rules_know_no_grpc_database_or_contract() -> None:
    imports = imported_modules(SERVICE / "usage" / "retention.py")
    assert not {name for name in imports if name.startswith(INFRASTRUCTURE)}


def test_records_are_kept_for_the_retention_days_before_today() -> None:
    assert retention.kept_since(TODAY, 90) == date(2026, 9, 2)


@pytest.mark.parametrize("partition", [day_partition(date(2026, 12, 3)), earlier_days_partition(date(2026, 12, 2))])
def test_a_partition_is_named_after_the_days_it_holds(partition: Partition) -> None:
    assert retention.partition_named(partition.name) == partition


def test_names_of_other_tables_are_no_partitions() -> None:
    assert retention.partition_named("usage_records_2026") is None
    assert retention.partition_named("monthly_usage") is None


def test_the_partition_of_earlier_days_holds_every_day_before_its_end() -> None:
    earlier = earlier_days_partition(date(2026, 12, 2))
    assert earlier.holds(date(1, 1, 1)) and earlier.holds(date(2026, 12, 1))
    assert not earlier.holds(date(2026, 12, 2))


def test_partitions_are_made_for_today_and_the_days_ahead_first_then_the_kept_days_latest_first() -> None:
    existing = [earlier_days_partition(date(2026, 11, 20)), day_partition(TODAY + timedelta(days=1))]
    made = retention.days_to_create(existing, today=TODAY, kept_since=date(2026, 11, 15), ahead_days=3, limit=100)
    ahead = [TODAY, TODAY + timedelta(days=2), TODAY + timedelta(days=3)]
    assert made == ahead + list(reversed(days(date(2026, 11, 20), date(2026, 11, 30))))


def test_a_run_makes_at_most_its_limit_of_partitions() -> None:
    made = retention.days_to_create([], today=TODAY, kept_since=TODAY - timedelta(days=90), ahead_days=3, limit=5)
    assert made == [*days(TODAY, TODAY + timedelta(days=3)), TODAY - timedelta(days=1)]


def test_only_partitions_whose_every_day_is_before_the_kept_days_are_dropped_oldest_first() -> None:
    kept_since = date(2026, 9, 2)
    earlier = earlier_days_partition(date(2026, 8, 30))
    expired = [day_partition(date(2026, 9, 1)), day_partition(date(2026, 8, 31))]
    kept = [day_partition(kept_since), day_partition(TODAY)]
    assert retention.partitions_to_drop([*kept, *expired, earlier], kept_since=kept_since, limit=10) == [
        earlier,
        *reversed(expired),
    ]
    assert retention.partitions_to_drop([*kept, *expired, earlier], kept_since=kept_since, limit=1) == [earlier]
