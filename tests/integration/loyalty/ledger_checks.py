"""Reads of the loyalty database that tests use to check what was (not) written."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def entry_count(engine: AsyncEngine) -> int:
    """How many ledger entries the database holds, over every account."""
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT count(*) FROM ledger_entries"))).scalar_one()


async def ledger_sum(engine: AsyncEngine, account_name: str) -> tuple[int, int]:
    """An account's stored balance and the sum of its entries."""
    account_id = account_name.removeprefix("accounts/")
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT a.balance, (SELECT coalesce(sum(points), 0) FROM ledger_entries e "
                    "WHERE e.account_id = a.id) AS total FROM accounts a WHERE a.id = :id"
                ),
                {"id": account_id},
            )
        ).one()
    return row.balance, row.total


async def ledger_state(engine: AsyncEngine, account_name: str) -> dict[str, int]:
    """An account's stored balance and reserved points next to the sums of its entries and of its
    lots' remaining points: the first three must always be equal, and so must the reserved pair."""
    account_id = account_name.removeprefix("accounts/")
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT a.balance, a.reserved, "
                    "(SELECT coalesce(sum(points), 0) FROM ledger_entries e WHERE e.account_id = a.id) AS points, "
                    "(SELECT coalesce(sum(reserved_change), 0) FROM ledger_entries e WHERE e.account_id = a.id) "
                    "  AS reserved_changes, "
                    "(SELECT coalesce(sum(remaining), 0) FROM point_lots l WHERE l.account_id = a.id) AS in_lots "
                    "FROM accounts a WHERE a.id = :id"
                ),
                {"id": account_id},
            )
        ).one()
    return dict(row._mapping)


async def lot_remainders(engine: AsyncEngine, account_name: str) -> dict[int, int]:
    """Points left in each of an account's lots, by the number of the entry that credited them."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT lot, remaining FROM point_lots WHERE account_id = :a"),
            {"a": account_name.removeprefix("accounts/")},
        )
        return {row.lot: row.remaining for row in rows}


async def qualifying_state(engine: AsyncEngine, account_name: str) -> tuple[int, int]:
    """An account's running total of qualifying points and the sum of its lots' qualifying points
    earned after the window start it keeps: the two must always be equal."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT a.qualifying_points, (SELECT coalesce(sum(qualifying), 0) FROM point_lots l "
                    "WHERE l.account_id = a.id AND l.earn_time > a.qualifying_since) AS in_lots "
                    "FROM accounts a WHERE a.id = :id"
                ),
                {"id": account_name.removeprefix("accounts/")},
            )
        ).one()
    return row.qualifying_points, row.in_lots


async def holdings_state(engine: AsyncEngine) -> tuple[tuple[int, dict[str, int]], tuple[int, dict[str, int]]]:
    """The program's holdings as the counters keep them and as every account adds up to: points held
    and open accounts per tier. The two must always be equal."""
    async with engine.connect() as connection:
        counted_points = (await connection.execute(text("SELECT coalesce(sum(points), 0) FROM points_held"))).scalar()
        scanned_points = (
            await connection.execute(text("SELECT coalesce(sum(balance + reserved), 0) FROM accounts"))
        ).scalar()
        counted_tiers = await connection.execute(
            text("SELECT tier, sum(accounts) AS n FROM tier_members GROUP BY tier HAVING sum(accounts) > 0")
        )
        scanned_tiers = await connection.execute(
            text("SELECT tier, count(*) AS n FROM accounts WHERE state = 'ACTIVE' GROUP BY tier")
        )
        return (
            (int(counted_points or 0), {row.tier: int(row.n) for row in counted_tiers}),
            (int(scanned_points or 0), {row.tier: int(row.n) for row in scanned_tiers}),
        )
