"""Rules of usage data: what makes a usage record acceptable, how a stream's records are counted, and
which months a profile covers. Plain Python. An operator's mediation sends billions of records a day,
so ingestion applies the record rules to a whole batch at once in the store (`store.store_batch`,
which writes `check_record` in SQL); `check_record` stays the rules' reference, and gives the reason
of every refused record whose reason is reported."""

import math
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from itertools import islice
from operator import itemgetter
from typing import NamedTuple

from chassis.errors import invalid_field
from services.customer.phone_numbers import normalize_phone

MAX_BATCH_RECORDS = 10_000
MAX_REPORTED_REJECTIONS = 1_000
MAX_PROFILE_MONTHS = 36
DEFAULT_PROFILE_MONTHS = 6
MAX_RECORD_ID_LENGTH = 128
MAX_AREA_LENGTH = 200
UNKNOWN = "unknown"
"""The area and radio technology of a record that names none."""
# Mediation sends E.164; anything else goes through the phone-number library (and its cache).
_E164 = re.compile(r"\+[1-9]\d{6,14}")
RADIO_TECHNOLOGIES = {1: "2G", 2: "3G", 3: "4G", 4: "5G"}
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""The characters `str.strip()` removes (those whose `isspace()` is true), for the store's SQL to trim alike."""
NUL = "\x00"
"""The one character PostgreSQL's text cannot hold."""


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


ReportedFields = tuple[str, str, int, int, int, float, float, float, int, float, bool, str, int]
"""A ReportedRecord's fields as a plain tuple, in its order: how a batch arrives from the servicer
(a named tuple per record costs more than the checks of a whole batch in the database)."""


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
    record: ReportedRecord, *, default_region: str, today: date, kept_since: date
) -> CheckedRecord | Rejection:
    """The record, checked and normalised, or why it is refused. Records of days before `kept_since`
    are refused: their days' partitions are dropped, so a replay could no longer be recognised."""
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
    if not record_id or len(record_id) > MAX_RECORD_ID_LENGTH:
        return Rejection(record_id, "MISSING_RECORD_ID", "record_id must have 1 to 128 characters")
    e164 = line_number(msisdn, default_region)
    if e164 is None:
        return Rejection(record_id, "INVALID_MSISDN", f"{msisdn!r} is not a valid phone number")
    try:
        usage_date = date(year, month, day)
    except ValueError:
        return Rejection(record_id, "INVALID_DATE", "usage_date is not a calendar date")
    if usage_date > today:
        return Rejection(record_id, "FUTURE_DATE", "usage_date is in the future")
    if usage_date < kept_since:
        return Rejection(record_id, "EXPIRED_DATE", f"usage_date is before {kept_since}, the oldest day still kept")
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
    if NUL in record_id or NUL in area:
        return Rejection(record_id, "INVALID_VALUE", "record_id and area must not contain NUL characters")
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
        area.strip()[:MAX_AREA_LENGTH] or UNKNOWN,
        technology or UNKNOWN,
    )


@lru_cache(maxsize=200_000)
def line_number(msisdn: str, default_region: str) -> str | None:
    """The number in E.164, or None when it is not a valid phone number; lines repeat, so the answer
    is remembered."""
    return msisdn if _E164.fullmatch(msisdn) else normalize_phone(msisdn, default_region)


@dataclass(frozen=True)
class CheckedBatch:
    """One batch of a stream after the checks: the records to store, each key (record id and day)
    once, and the refused ones."""

    records: list[CheckedRecord]
    rejections: list[Rejection]
    repeats: int
    """Records whose key came earlier in the same batch (duplicates, not stored twice)."""


def require_batch_size(count: int) -> None:
    """A batch holds at most MAX_BATCH_RECORDS records."""
    if count > MAX_BATCH_RECORDS:
        raise invalid_field("records", f"a batch holds at most {MAX_BATCH_RECORDS} records")


def check_batch(
    records: Sequence[ReportedRecord], *, default_region: str, today: date, kept_since: date
) -> CheckedBatch:
    """Checks every record of a batch of at most MAX_BATCH_RECORDS; a repeated key counts once.

    The key is the record id with its day, as the store keys records (PostgreSQL enforces uniqueness
    on a table partitioned by day only for keys that hold the day): a replay of a record, the same
    record sent again, is counted once; an id that mediation reuses for another day is another record.
    """
    require_batch_size(len(records))
    checked: dict[tuple[str, date], CheckedRecord] = {}
    rejections: list[Rejection] = []
    repeats = 0
    for record in records:
        outcome = check_record(record, default_region=default_region, today=today, kept_since=kept_since)
        if isinstance(outcome, Rejection):
            rejections.append(outcome)
        elif (outcome.record_id, outcome.usage_date) in checked:
            repeats += 1
        else:
            checked[outcome.record_id, outcome.usage_date] = outcome
    return CheckedBatch(list(checked.values()), rejections, repeats)


@dataclass(frozen=True)
class RecordChecks:
    """What records are checked against when a whole batch is checked at once: the region of numbers
    written without a country code, today, and the oldest day still kept."""

    default_region: str
    today: date
    kept_since: date

    def check(self, record: ReportedRecord) -> CheckedRecord | Rejection:
        """check_record with these values."""
        return check_record(record, default_region=self.default_region, today=self.today, kept_since=self.kept_since)


@dataclass(frozen=True)
class StagedBatch:
    """A batch as the store checks it at once (`store.store_batch`): every record in its place, and the
    numbers not written in E.164, each with its E.164 form (None: not a valid phone number)."""

    rows: Sequence[ReportedFields]
    numbers: dict[str, str | None]


_RECORD_IDS, _MSISDNS, _AREAS = itemgetter(0), itemgetter(1), itemgetter(11)
_REFUSED: ReportedFields = ("", "", 0, 0, 0, 0.0, 0.0, 0.0, 0, 0.0, False, "", 0)
"""What the store is sent in place of a record with NUL that the rules refuse: no record id, refused too."""


def stage_batch(rows: Sequence[ReportedFields], checks: RecordChecks) -> StagedBatch:
    """The batch ready for the store's checks. Parsing numbers not written in E.164 takes the
    phone-number library, so it is done here, once per number; text holding NUL, which PostgreSQL
    cannot take, is settled here too, by the rules record by record (mediation never sends it)."""
    require_batch_size(len(rows))
    if any(NUL in "".join(map(column, rows)) for column in (_RECORD_IDS, _MSISDNS, _AREAS)):
        rows = [_storable(row, checks) for row in rows]
    return StagedBatch(rows, unusual_numbers(map(_MSISDNS, rows), checks.default_region))


def _storable(row: ReportedFields, checks: RecordChecks) -> ReportedFields:
    if NUL not in row[0] and NUL not in row[1] and NUL not in row[11]:
        return row
    outcome = checks.check(ReportedRecord(*row))
    if isinstance(outcome, Rejection):
        return _REFUSED
    # Only the number held NUL, and the phone-number library read past it: the record goes in E.164.
    return (row[0], outcome.msisdn, *row[2:])


def unusual_numbers(msisdns: Iterable[str], default_region: str) -> dict[str, str | None]:
    """Of the distinct numbers given, those not written in E.164, each with its E.164 form or None."""
    return {msisdn: e164 for msisdn in set(msisdns) if (e164 := line_number(msisdn, default_region)) != msisdn}


@dataclass(frozen=True)
class StoredBatch:
    """What the store made of a staged batch; records are named by their place in the batch."""

    stored: int
    """Records stored for the first time."""
    refused: Sequence[int]
    """Records the checks refused, in batch order."""
    unmatched: Sequence[int]
    """Records that passed the checks (the first of each key) of numbers no line in service has, in
    batch order."""
    passed: int
    """Records that passed the checks, each key once."""
    repeats: int
    """Records that passed the checks after their key came earlier in the batch."""


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
            self.reject(unknown_line(record))
        self.accepted += stored
        self.duplicates += len(batch.records) - len(unmatched) - stored + batch.repeats

    def count_stored(self, rows: Sequence[ReportedFields], batch: StoredBatch, checks: RecordChecks) -> None:
        """Counts a batch the store checked and took at once, as count_batch counts it; the reasons of
        the refusals kept come from check_record, read for those records only."""

        def refusal(position: int) -> Rejection:
            outcome = checks.check(ReportedRecord(*rows[position]))
            if not isinstance(outcome, Rejection):
                raise RuntimeError(f"the store refused record {position} of a batch that the rules accept")
            return outcome

        def unknown(position: int) -> Rejection:
            outcome = checks.check(ReportedRecord(*rows[position]))
            if isinstance(outcome, Rejection):
                raise RuntimeError(f"the store took record {position} of a batch that the rules refuse")
            return unknown_line(outcome)

        self._reject_all(len(batch.refused), map(refusal, batch.refused))
        self._reject_all(len(batch.unmatched), map(unknown, batch.unmatched))
        self.accepted += batch.stored
        self.duplicates += batch.passed - len(batch.unmatched) - batch.stored + batch.repeats

    def _reject_all(self, count: int, rejections: Iterator[Rejection]) -> None:
        """Counts `count` refusals, reading their reasons from `rejections` only while they are kept."""
        self.rejected += count
        self.rejections.extend(islice(rejections, max(0, MAX_REPORTED_REJECTIONS - len(self.rejections))))


def unknown_line(record: CheckedRecord) -> Rejection:
    """The refusal of a record whose number no line in service has."""
    return Rejection(record.record_id, "UNKNOWN_MSISDN", f"no line in service has {record.msisdn}")


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
