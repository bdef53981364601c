"""The partitions of `usage_records` in the database: which exist, making one, dropping one once folded.

Partitions live in their own schema, apart from the tables the service is written against. A
partition is made as a table of its own and then attached, which holds back no insert (attaching
takes a lock that inserts do not wait for, unlike CREATE TABLE ... PARTITION OF). Dropping one needs
the parent table to itself for a moment, so it waits at most LOCK_TIMEOUT for ingestion to let go.
"""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.usage.retention import Partition, partition_named

PARTITION_SCHEMA = "usage_partitions"
LOCK_TIMEOUT = "2s"
# Replicas keep the partitions one at a time.
_UPKEEP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('usage-partitions'))"


async def existing_partitions(session: AsyncSession) -> list[Partition]:
    """The partitions usage_records has (tables of other names are none of the upkeep's business)."""
    names = await session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'usage_records'::regclass"
        )
    )
    return [partition for name in names.scalars() if (partition := partition_named(name)) is not None]


async def create_partition(session: AsyncSession, partition: Partition) -> bool:
    """Makes the partition, unless another replica just did; whether it made it."""
    await session.execute(text(_UPKEEP_LOCK))
    if await _exists(session, partition):
        return False
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    table = _qualified(partition)
    # The bounds are dates formatted here, not input: DDL takes no parameters.
    lower = "MINVALUE" if partition.first is None else f"'{partition.first.isoformat()}'"
    await session.execute(text(f"CREATE TABLE {table} (LIKE usage_records INCLUDING DEFAULTS)"))
    await session.execute(
        text(
            f"ALTER TABLE usage_records ATTACH PARTITION {table} "
            f"FOR VALUES FROM ({lower}) TO ('{partition.end.isoformat()}')"
        )
    )
    return True


async def drop_partition_if_folded(session: AsyncSession, partition: Partition) -> bool:
    """Drops the partition if every record in it is folded into the profiles; whether it did.

    Ingestion refuses records of days older than the retention, so once folded an expired partition
    gets nothing new: the check runs with the table locked, after every transaction that could still
    write to it has ended, and a record that is not folded yet keeps its partition until the next run.
    """
    await session.execute(text(_UPKEEP_LOCK))
    if not await _exists(session, partition):
        return False
    await session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await session.execute(text("LOCK TABLE ONLY usage_records IN ACCESS EXCLUSIVE MODE"))
    table = _qualified(partition)
    unfolded = await session.execute(
        text(
            f"SELECT EXISTS (SELECT FROM {table} "
            "WHERE ingest_xid >= (SELECT done_below FROM usage_fold_state WHERE id = 1))"
        )
    )
    if unfolded.scalar_one():
        return False
    await session.execute(text(f"DROP TABLE {table}"))
    return True


async def _exists(session: AsyncSession, partition: Partition) -> bool:
    found = await session.execute(text("SELECT to_regclass(:table) IS NOT NULL"), {"table": _qualified(partition)})
    return bool(found.scalar_one())


def _qualified(partition: Partition) -> str:
    return f"{PARTITION_SCHEMA}.{partition.name}"
