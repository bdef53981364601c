"""Coverage data: which radio technologies exist in each area, as usage records name the areas,
replaced a market at a time."""

from collections.abc import Sequence
from dataclasses import dataclass

from chassis.errors import Violations
from services.offers.catalog import Technology
from services.offers.money import MARKET_CURRENCY
from services.offers.text_keys import place_key

MAX_AREAS = 10_000


@dataclass(frozen=True)
class Area:
    """One area of a market and the technologies present there."""

    market: str
    area: str
    technologies: frozenset[Technology]

    @property
    def key(self) -> str:
        """The area's name as compared (case and diacritics ignored)."""
        return place_key(self.area)


def checked_areas(market: str, areas: Sequence[Area]) -> list[Area]:
    """The areas of `market`, each named once; INVALID_ARGUMENT naming every bad area."""
    violations = Violations()
    if market not in MARKET_CURRENCY:
        violations.add("market", f"must be one of {', '.join(sorted(MARKET_CURRENCY))}")
    if len(areas) > MAX_AREAS:
        violations.add("areas", f"at most {MAX_AREAS} areas")
    seen: set[str] = set()
    for index, area in enumerate(areas):
        if area.market not in ("", market):
            violations.add(f"areas[{index}].market", f"must be empty or {market}")
        if not area.key or len(area.area) > 200:
            violations.add(f"areas[{index}].area", "is required, at most 200 characters")
        elif area.key in seen:
            violations.add(f"areas[{index}].area", f"{area.area!r} is named twice")
        seen.add(area.key)
        if Technology.UNSPECIFIED in area.technologies:
            violations.add(f"areas[{index}].technologies", "must name radio technologies")
    violations.raise_if_any()
    return [Area(market, area.area.strip(), area.technologies) for area in areas]
