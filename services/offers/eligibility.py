"""Which offerings a line may take: sold in its market and home region, on sale now, and, for an
offering that needs a radio technology, usable where the line is actually used: the line's usage was
on that technology (its device and SIM carry it) and coverage data has it in the areas of most of the
line's use."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.offers.catalog import Offering, Technology
from services.offers.costing import AreaUse, MonthUsage
from services.offers.text_keys import place_key

MIN_COVERED_SHARE = 0.5
"""Share of the line's usage records that must fall in areas covered by the technology an offering needs."""

CoverageMap = Mapping[str, frozenset[Technology]]
"""Technologies present per area of a market, keyed by `place_key` of the area."""


@dataclass(frozen=True)
class LineContext:
    """What eligibility looks at of a line."""

    market: str
    home_region: str
    usage: Sequence[MonthUsage]


@dataclass(frozen=True)
class Ineligibility:
    """Why a line may not take an offering."""

    reason: str
    explanation: str


def ineligibility(offering: Offering, line: LineContext, coverage: CoverageMap, now: datetime) -> Ineligibility | None:
    """Why the line may not take `offering`; None when it may."""
    if offering.market != line.market:
        return Ineligibility("OTHER_MARKET", f"{offering.display_name} is sold in {offering.market}, not {line.market}")
    if not offering.on_sale(now):
        return Ineligibility("NOT_ON_SALE", f"{offering.display_name} is not on sale")
    if offering.regions and place_key(line.home_region) not in {place_key(r) for r in offering.regions}:
        regions = ", ".join(offering.regions)
        return Ineligibility(
            "NOT_SOLD_IN_REGION",
            f"{offering.display_name} is sold only in {regions}; the line's home region is "
            f"{line.home_region or 'not known'}",
        )
    if offering.required_technology is Technology.UNSPECIFIED:
        return None
    return technology_ineligibility(offering, area_uses(line.usage), coverage)


def technology_ineligibility(
    offering: Offering, uses: Sequence[AreaUse], coverage: CoverageMap
) -> Ineligibility | None:
    """Why the technology `offering` needs does not serve the line where it is used; None when it does."""
    needed = offering.required_technology
    total = sum(use.records for use in uses)
    if total == 0:
        return Ineligibility(
            "NO_USAGE_TO_CHECK", f"{offering.display_name} needs {needed.label}; the line has no usage to check it on"
        )
    covered = sum(use.records for use in uses if _covered(coverage, use.area, needed))
    if covered < MIN_COVERED_SHARE * total:
        uncovered = sorted({use.area for use in uses if not _covered(coverage, use.area, needed)})
        return Ineligibility(
            "NO_COVERAGE",
            f"{offering.display_name} needs {needed.label}, which is not available where the line is mostly used "
            f"({', '.join(uncovered)}): {covered} of {total} usage records were in covered areas",
        )
    best = max(use.technology for use in uses)
    if best < needed:
        return Ineligibility(
            "TECHNOLOGY_NOT_USED",
            f"{offering.display_name} needs {needed.label}; all of the line's usage was on {best.label} or less, "
            "so its device or SIM may not support it",
        )
    return None


def area_uses(usage: Sequence[MonthUsage]) -> list[AreaUse]:
    """The area x technology breakdown of every month, added up per area and technology."""
    records: dict[tuple[str, Technology], int] = {}
    names: dict[str, str] = {}
    for month in usage:
        for use in month.areas:
            key = place_key(use.area)
            names.setdefault(key, use.area)
            records[(key, use.technology)] = records.get((key, use.technology), 0) + use.records
    return [AreaUse(names[key], technology, count) for (key, technology), count in records.items()]


def _covered(coverage: CoverageMap, area: str, needed: Technology) -> bool:
    return any(technology >= needed for technology in coverage.get(place_key(area), frozenset()))
