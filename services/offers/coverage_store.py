"""The coverage tables: areas per market with their technologies, and when the data was replaced."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.pagination import PageRequest
from services.offers.catalog import Technology
from services.offers.coverage import Area
from services.offers.eligibility import CoverageMap


@dataclass(frozen=True)
class CoverageState:
    """How much coverage data there is and when it was last replaced."""

    area_count: int
    version: int
    update_time: datetime | None


async def replace_market(session: AsyncSession, market: str, areas: Sequence[Area], now: datetime) -> None:
    """Replaces every area of `market` with `areas`."""
    await session.execute(text("SELECT version FROM coverage_state WHERE id = 1 FOR UPDATE"))
    await session.execute(text("DELETE FROM coverage_areas WHERE market = :market"), {"market": market})
    if areas:
        await session.execute(
            text(
                "INSERT INTO coverage_areas (market, area_key, area, technologies) "
                "VALUES (:market, :key, :area, :technologies)"
            ),
            [
                {
                    "market": market,
                    "key": area.key,
                    "area": area.area,
                    "technologies": sorted(t.value for t in area.technologies),
                }
                for area in areas
            ],
        )
    await session.execute(
        text("UPDATE coverage_state SET version = version + 1, update_time = :now WHERE id = 1"), {"now": now}
    )


async def coverage_state(session: AsyncSession) -> CoverageState:
    """The count of areas and the data's version."""
    row = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM coverage_areas) AS area_count, version, update_time "
                "FROM coverage_state WHERE id = 1"
            )
        )
    ).one()
    return CoverageState(row.area_count, row.version, row.update_time)


async def list_areas(session: AsyncSession, market: str, page: PageRequest) -> list[Area]:
    """A page of a market's areas by key."""
    after = str(page.after[0]) if page.after else ""
    rows = await session.execute(
        text(
            "SELECT market, area, technologies FROM coverage_areas WHERE market = :market AND area_key > :after "
            "ORDER BY area_key LIMIT :limit"
        ),
        {"market": market, "after": after, "limit": page.fetch_size},
    )
    return [Area(row.market, row.area, frozenset(Technology(t) for t in row.technologies)) for row in rows]


async def coverage_of(session: AsyncSession, market: str, area_keys: Sequence[str]) -> CoverageMap:
    """The technologies of the named areas of a market (areas without data are left out)."""
    if not area_keys:
        return {}
    rows = await session.execute(
        text("SELECT area_key, technologies FROM coverage_areas WHERE market = :market AND area_key = ANY(:keys)"),
        {"market": market, "keys": list(area_keys)},
    )
    return {row.area_key: frozenset(Technology(t) for t in row.technologies) for row in rows}
