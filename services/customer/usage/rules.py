"""Rules of usage data: what makes a usage record acceptable, how a stream's records are counted, and
which months a profile covers. Plain Python, and cheap per record, because an operator's mediation
sends billions of records a day."""

import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import NamedTuple

from chassis.errors import invalid_field
from services.customer.phone_numbers import normalize_phone

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


class ReportedRecord(NamedTuple):
    """A usage record as mediation reported it, before any check; the date comes as its three numbers
    because the wire allows days that do not exist."""

    record_id: str
    msisdn: str
    year: int
    month: int
    day: int
    on_net_minutes: float
    off_net_minutes: float
    international_minutes: float
    sms_count: int
    data_mb: float
    roaming: bool
    area: str
    radio_technology: int


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


def check_record(record: ReportedRecord, *, default_region: str, today: date) -> CheckedRecord | Rejection:
    """The record, checked and normalised, or why it is refused."""
    (
        record_id,
        msisdn,
        year,
        month,
        day,
        on_net_minutes,
        off_net_minutes,
        international_minutes,
        sms_count,
        data_mb,
        roaming,
        area,
        radio_technology,
    ) = record
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
    for name, amount in (
        ("on_net_minutes", on_net_minutes),
        ("off_net_minutes", off_net_minutes),
        ("international_minutes", international_minutes),
        ("data_mb", data_mb),
    ):
        if not (math.isfinite(amount) and amount >= 0):
            return Rejection(record_id, "INVALID_VALUE", f"{name} must be a finite amount, not negative")
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


@dataclass(frozen=True)
class CheckedBatch:
    """One batch of a stream after the checks: the records to store, each record id once, and the
    refused ones."""

    records: list[CheckedRecord]
    rejections: list[Rejection]
    repeats: int
    """Records whose id came earlier in the same batch (duplicates, not stored twice)."""


def check_batch(records: Sequence[ReportedRecord], *, default_region: str, today: date) -> CheckedBatch:
    """Checks every record of a batch of at most MAX_BATCH_RECORDS; a repeated record id counts once."""
    if len(records) > MAX_BATCH_RECORDS:
        raise invalid_field("records", f"a batch holds at most {MAX_BATCH_RECORDS} records")
    checked: dict[str, CheckedRecord] = {}
    rejections: list[Rejection] = []
    repeats = 0
    for record in records:
        outcome = check_record(record, default_region=default_region, today=today)
        if isinstance(outcome, Rejection):
            rejections.append(outcome)
        elif outcome.record_id in checked:
            repeats += 1
        else:
            checked[outcome.record_id] = outcome
    return CheckedBatch(list(checked.values()), rejections, repeats)


@dataclass
class IngestTally:
    """What happened to the records of one stream so far."""

    accepted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    """The first MAX_REPORTED_REJECTIONS refusals, with their reasons."""
    rejected: int = 0

    def reject(self, rejection: Rejection) -> None:
        """Counts a refused record, keeping the first reasons."""
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED_REJECTIONS:
            self.rejections.append(rejection)

    def count_batch(self, batch: CheckedBatch, *, stored: int, unknown_msisdns: Iterable[str]) -> None:
        """Counts a batch once the store took it: `stored` records were new; records of numbers no line
        in service has are refused; every other record was counted before (a duplicate)."""
        for rejection in batch.rejections:
            self.reject(rejection)
        unknown = set(unknown_msisdns)
        unmatched = [record for record in batch.records if record.msisdn in unknown]
        for record in unmatched:
            self.reject(Rejection(record.record_id, "UNKNOWN_MSISDN", f"no line in service has {record.msisdn}"))
        self.accepted += stored
        self.duplicates += len(batch.records) - len(unmatched) - stored + batch.repeats


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


@dataclass(frozen=True)
class LineMonth:
    """One line's usage in one month, with the areas it was used in (most records first)."""

    subscription_id: uuid.UUID
    customer_id: uuid.UUID
    month: date
    on_net_minutes: float
    off_net_minutes: float
    international_minutes: float
    sms_count: int
    data_mb: float
    active_days: int
    roaming_days: int
    record_count: int
    areas: list[tuple[str, str, int, float]]
    """(area, radio technology, records, MB of data) of each area."""


@dataclass(frozen=True)
class CustomerMonth:
    """A customer's usage over all lines in one month."""

    month: date
    voice_minutes: float
    on_net_minutes: float
    data_mb: float
    roaming_days: int
    """The most days any one line roamed."""
