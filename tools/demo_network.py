"""The demo operator's radio network: the areas its usage records name (every region of the demo
markets, and some villages in them) and the radio technologies each has.

tools.demo_behaviour draws where and on which technology each line is used from it, and
tools.demo_offers loads it into the offers service as coverage data, so that eligibility sees the
network the usage came from: 4G and 3G in every region (Vietnam switched 2G off in 2024), 5G in the
capitals and the largest cities where the operators launched it, and villages in the mountains, the
steppe and the delta that have 2G only, or 3G in Vietnam.
"""

from dataclasses import dataclass
from typing import TypeAlias

from crm.customer.v1 import usage_pb2
from tools.demo_data import COUNTRIES

Technology: TypeAlias = usage_pb2.RadioTechnology
"""A radio technology; a later generation has the greater value."""

G2, G3, G4, G5 = (
    usage_pb2.RADIO_TECHNOLOGY_2G,
    usage_pb2.RADIO_TECHNOLOGY_3G,
    usage_pb2.RADIO_TECHNOLOGY_4G,
    usage_pb2.RADIO_TECHNOLOGY_5G,
)


@dataclass(frozen=True)
class NetworkArea:
    """An area as usage records name it, and the radio technologies present there."""

    name: str
    country: str
    """ISO 3166-1 alpha-2 code of its country."""
    technologies: tuple[Technology, ...]
    """Oldest first."""
    region: str = ""
    """For a village, the region it lies in (a line's home region); "" for a region itself."""


_REGION_TECHNOLOGIES = {"UZ": (G2, G3, G4), "UA": (G2, G3, G4), "VN": (G3, G4), "RU": (G2, G3, G4)}
_WITH_5G = frozenset({"Toshkent shahri", "Hà Nội", "Thành phố Hồ Chí Minh", "Đà Nẵng"})

REGIONS = tuple(
    NetworkArea(
        region.name, country.code, _REGION_TECHNOLOGIES[country.code] + ((G5,) if region.name in _WITH_5G else ())
    )
    for country in COUNTRIES
    for region in country.regions
)
VILLAGES = (
    NetworkArea("Moʻynoq", "UZ", (G2,), region="Qoraqalpogʻiston Respublikasi"),
    NetworkArea("Shohimardon", "UZ", (G2,), region="Fargʻona viloyati"),
    NetworkArea("Langar", "UZ", (G2,), region="Qashqadaryo viloyati"),
    NetworkArea("Вилкове", "UA", (G2,), region="Одеська область"),
    NetworkArea("Славське", "UA", (G2, G3), region="Львівська область"),
    NetworkArea("Kỳ Sơn", "VN", (G3,), region="Nghệ An"),
    NetworkArea("Cô Tô", "VN", (G3,), region="Quảng Ninh"),
    NetworkArea("Висим", "RU", (G2,), region="Свердловская область"),
    NetworkArea("Ордынское", "RU", (G2, G3), region="Новосибирская область"),
)
AREAS = REGIONS + VILLAGES
"""Every area of the network."""

_REGIONS_BY_NAME = {area.name: area for area in REGIONS}


def region_area(region: str) -> NetworkArea | None:
    """The area of a home region; None for a region the network does not know."""
    return _REGIONS_BY_NAME.get(region)


def villages_in(region: str) -> tuple[NetworkArea, ...]:
    """The villages of a region the network names on their own."""
    return tuple(village for village in VILLAGES if village.region == region)


def areas_of(country: str) -> tuple[NetworkArea, ...]:
    """Every area of a country's network."""
    return tuple(area for area in AREAS if area.country == country)
