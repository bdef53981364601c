"""Rules of usage data: what makes a usage record acceptable. Plain Python, and cheap per record,
because an operator's mediation sends billions of records a day."""

import math
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import NamedTuple

from services.customer.domain import normalize_phone

MAX_BATCH_RECORDS = 10_000
MAX_REPORTED_REJECTIONS = 1_000
MAX_PROFILE_MONTHS = 36
DEFAULT_PROFILE_MONTHS = 6
# Mediation sends E.164; anything else goes through the phone-number library (and its cache).
_E164 = re.compile(r"\+[1-9]\d{6,14}")
RADIO_TECHNOLOGIES = {1: "2G", 2: "3G", 3: "4G", 4: "5G"}


@dataclass(frozen=True)
class Rejection:
    """A refused record and why."""

    record_id: str
    reason: str
    message: str


class CheckedRecord(NamedTuple):
    """A record that passed the checks, with its MSISDN in E.164. A tuple: millions are made, and
    its fields are the columns the store sends in bulk, in order."""

    record_id: str
    msisdn: str
    usage_date: date
    on_net_minutes: float
    off_net_minutes: float
    international_minutes: float
    sms_count: int
    data_mb: float
    roaming: bool
    area: str
    radio_technology: str


def check_record(
    *,
    record_id: str,
    msisdn: str,
    year: int,
    month: int,
    day: int,
    on_net_minutes: float,
    off_net_minutes: float,
    international_minutes: float,
    sms_count: int,
    data_mb: float,
    roaming: bool,
    area: str,
    radio_technology: int,
    default_region: str,
    today: date,
) -> CheckedRecord | Rejection:
    """The record, checked and normalised, or why it is refused."""
    if not record_id or len(record_id) > 128:
        return Rejection(record_id, "MISSING_RECORD_ID", "record_id must have 1 to 128 characters")
    e164 = msisdn if _E164.fullmatch(msisdn) else cached_e164(msisdn, default_region)
    if e164 is None:
        return Rejection(record_id, "INVALID_MSISDN", f"{msisdn!r} is not a valid phone number")
    try:
        usage_date = date(year, month, day)
    except ValueError:
        return Rejection(record_id, "INVALID_DATE", "usage_date is not a calendar date")
    if usage_date > today:
        return Rejection(record_id, "FUTURE_DATE", "usage_date is in the future")
    for field, amount in (
        ("on_net_minutes", on_net_minutes),
        ("off_net_minutes", off_net_minutes),
        ("international_minutes", international_minutes),
        ("data_mb", data_mb),
    ):
        if not (math.isfinite(amount) and amount >= 0):
            return Rejection(record_id, "INVALID_VALUE", f"{field} must be a finite amount, not negative")
    if sms_count < 0:
        return Rejection(record_id, "INVALID_VALUE", "sms_count must not be negative")
    technology = RADIO_TECHNOLOGIES.get(radio_technology)
    if technology is None and radio_technology != 0:
        return Rejection(record_id, "INVALID_VALUE", f"radio_technology {radio_technology} is not known")
    return CheckedRecord(
        record_id,
        e164,
        usage_date,
        on_net_minutes,
        off_net_minutes,
        international_minutes,
        sms_count,
        data_mb,
        roaming,
        area.strip()[:200] or "unknown",
        technology or "unknown",
    )


@lru_cache(maxsize=200_000)
def cached_e164(msisdn: str, default_region: str) -> str | None:
    """E.164 of a number in another format; lines repeat, so parsing is remembered."""
    return normalize_phone(msisdn, default_region)


def profile_months(requested: int) -> int | None:
    """How many months a profile covers; None when the request is out of range."""
    if requested == 0:
        return DEFAULT_PROFILE_MONTHS
    if 1 <= requested <= MAX_PROFILE_MONTHS:
        return requested
    return None


def first_month(today: date, months: int) -> date:
    """The first day of the earliest month of a `months`-long profile ending this month."""
    index = today.year * 12 + today.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)
