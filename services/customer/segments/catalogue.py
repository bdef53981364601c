"""The segments there are: each segment id's dimension and what membership means for people, and which
ids a segment name may carry. Segments named by a value (a configured band, a home region) carry it
after their dimension's prefix."""

import re
from collections.abc import Mapping
from enum import StrEnum

from services.customer.customers.text import fold

# What a segment id may look like in a request (segments/{segment}).
_SEGMENT_ID = re.compile(r"^[a-z0-9][a-z0-9\-]{0,120}$")


class Dimension(StrEnum):
    """The aspect a segment divides customers by (crm.customer.v1.SegmentDimension); each segment has one."""

    CUSTOMER_TYPE = "CUSTOMER_TYPE"
    VALUE = "VALUE"
    DEBTOR = "DEBTOR"
    CHURN_RISK = "CHURN_RISK"
    CHURNED = "CHURNED"
    USAGE = "USAGE"
    TENURE = "TENURE"
    AGE = "AGE"
    REGION = "REGION"


# Every segment with a fixed id: its dimension, and what membership means for people.
_FIXED_SEGMENTS: dict[str, tuple[Dimension, str]] = {
    "type-consumer": (Dimension.CUSTOMER_TYPE, "Individual customers"),
    "type-household": (Dimension.CUSTOMER_TYPE, "Household accounts"),
    "type-business": (Dimension.CUSTOMER_TYPE, "Enterprises and small or medium businesses"),
    "type-government": (Dimension.CUSTOMER_TYPE, "Government bodies"),
    "value-vip": (Dimension.VALUE, "Top share of customers by average monthly spend"),
    "debtor": (Dimension.DEBTOR, "Overdue beyond the threshold, or frequently late"),
    "churn-risk-high": (Dimension.CHURN_RISK, "Churn-risk score at or above the threshold"),
    "churned-to-competitor": (Dimension.CHURNED, "Left by porting their number to a competitor"),
    "usage-data-heavy": (Dimension.USAGE, "Data above the threshold last month"),
    "usage-voice-heavy": (Dimension.USAGE, "Voice minutes above the threshold last month"),
    "usage-mostly-on-net": (Dimension.USAGE, "Most voice minutes within the operator's network"),
    "usage-roamer": (Dimension.USAGE, "Several days roaming abroad last month"),
    "usage-low-user": (Dimension.USAGE, "Little use of data and voice last month"),
}
# Segments named by a value (a configured band, a home region) carry it after their dimension's prefix.
TENURE_PREFIX = "tenure-"
AGE_PREFIX = "age-"
REGION_PREFIX = "region-"
# A band id as the rules write it: "under-25", "25-35" (25 to 34) or "65-plus".
_BAND = re.compile(r"^(?:under-(?P<below>\d+)|(?P<lower>\d+)-(?P<upper>\d+)|(?P<from>\d+)-plus)$")


def dimension_of(segment: str) -> Dimension:
    """The dimension of a segment id ("age-25-35" -> AGE); ValueError for an id no rule makes."""
    return _dimension_and_description(segment)[0]


def describe_segment(segment: str) -> str:
    """What membership of a segment means, for people ("age-25-35" -> "Aged 25 to 34")."""
    return _dimension_and_description(segment)[1]


def _dimension_and_description(segment: str) -> tuple[Dimension, str]:
    if segment in _FIXED_SEGMENTS:
        return _FIXED_SEGMENTS[segment]
    if segment.startswith(TENURE_PREFIX) and (band := _BAND.match(segment.removeprefix(TENURE_PREFIX))):
        return Dimension.TENURE, _describe_tenure_band(band)
    if segment.startswith(AGE_PREFIX) and (band := _BAND.match(segment.removeprefix(AGE_PREFIX))):
        return Dimension.AGE, _describe_age_band(band)
    if segment.startswith(REGION_PREFIX) and (slug := segment.removeprefix(REGION_PREFIX)):
        region = " ".join(word[:1].upper() + word[1:] for word in slug.split("-"))
        return Dimension.REGION, f"Home region: {region}"
    raise ValueError(f"no segmentation rule makes the segment {segment!r}")


def _describe_age_band(band: re.Match[str]) -> str:
    if band["below"]:
        return f"Aged under {band['below']}"
    if band["from"]:
        return f"Aged {band['from']} or over"
    lower, last = int(band["lower"]), int(band["upper"]) - 1
    return f"Aged {lower}" if lower == last else f"Aged {lower} to {last}"


def _describe_tenure_band(band: re.Match[str]) -> str:
    if band["below"]:
        return f"Customer for less than {_years(int(band['below']))}"
    if band["from"]:
        return f"Customer for {_years(int(band['from']))} or more"
    lower, last = int(band["lower"]), int(band["upper"]) - 1
    return f"Customer for {_years(lower)}" if lower == last else f"Customer for {lower} to {_years(last)}"


def _years(count: int) -> str:
    return "1 year" if count == 1 else f"{count} years"


def region_slug(region: str) -> str:
    """A region's segment key: folded, words joined by '-' ("Toshkent viloyati" -> "toshkent-viloyati")."""
    return "-".join(re.findall(r"\w+", fold(region)))


def is_segment_id(text: str) -> bool:
    """Whether `text` has the shape of a segment id: lower-case letters, digits and '-'."""
    return _SEGMENT_ID.fullmatch(text) is not None


def listed_segments(counts: Mapping[str, int], dimension: Dimension | None) -> list[tuple[str, int]]:
    """The segments that have members, with their counts, of one dimension or (None) of every one."""
    return [
        (segment, count)
        for segment, count in counts.items()
        if count > 0 and (dimension is None or dimension_of(segment) is dimension)
    ]
