"""Business time on a department's calendar: its time zone, opening hours per weekday, the public
holidays of its country (the `holidays` package) plus company days off, minus company working days.

Two operations, built on one sequence of open intervals so that each undoes the other exactly:
`business_time_between` measures the open time between two moments, `add_business_time` finds the
moment a given amount of open time after a start. Moments are aware datetimes; intervals are
worked out in the calendar's zone and compared in UTC, so daylight-saving days are as long as they are.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from chassis.errors import FailedPrecondition, Violations

MINUTES_PER_DAY = 24 * 60
# Days looked ahead for enough open time before a calendar is taken as never open (ten years).
_SEARCH_DAYS = 3660


@dataclass(frozen=True, order=True)
class OpeningPeriod:
    """One opening period of a weekday in the calendar's zone, in minutes since midnight."""

    weekday: int
    """0 is Monday ... 6 is Sunday."""
    opens: int
    """Minute of the day it opens, 0 to 1439."""
    closes: int
    """Minute of the day it closes, after `opens`, at most 1440 (midnight of the next day)."""


@dataclass(frozen=True)
class BusinessCalendar:
    """When a department is open."""

    time_zone: str
    """IANA zone, e.g. `Asia/Tashkent`."""
    opening_hours: tuple[OpeningPeriod, ...]
    """Opening periods; a weekday without one is closed."""
    country_code: str = ""
    """ISO country whose public holidays close the department; empty for none."""
    company_holidays: frozenset[date] = field(default_factory=frozenset)
    """Company days off besides the public holidays."""
    company_working_days: frozenset[date] = field(default_factory=frozenset)
    """Days worked although the country's list names them holidays."""

    @cached_property
    def zone(self) -> ZoneInfo:
        """The calendar's zone."""
        return ZoneInfo(self.time_zone)

    @cached_property
    def _public_holidays(self) -> holidays.HolidayBase | None:
        # Years are filled in as days are asked about.
        return holidays.country_holidays(self.country_code) if self.country_code else None

    @cached_property
    def _periods_by_weekday(self) -> dict[int, list[OpeningPeriod]]:
        by_day: dict[int, list[OpeningPeriod]] = {day: [] for day in range(7)}
        for period in sorted(self.opening_hours):
            by_day[period.weekday].append(period)
        return by_day

    def is_day_off(self, day: date) -> bool:
        """Whether the department is closed all `day` (a public or company holiday it does not work)."""
        if day in self.company_working_days:
            return False
        if day in self.company_holidays:
            return True
        return self._public_holidays is not None and day in self._public_holidays

    def open_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's opening periods as UTC intervals (none on a day off)."""
        if self.is_day_off(day):
            return []
        intervals = []
        for period in self._periods_by_weekday[day.weekday()]:
            start, end = self._moment(day, period.opens), self._moment(day, period.closes)
            if end > start:
                intervals.append((start, end))
        return intervals

    def _moment(self, day: date, minute: int) -> datetime:
        if minute >= MINUTES_PER_DAY:
            day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone)
        return local.astimezone(UTC)


def check_calendar(calendar: BusinessCalendar, field_path: str = "calendar") -> None:
    """INVALID_ARGUMENT naming each bad part: an unknown zone or country, a period that closes before it
    opens or overlaps another, or a week without any opening."""
    violations = Violations()
    try:
        ZoneInfo(calendar.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        violations.add(f"{field_path}.time_zone", f"is not a known IANA time zone: {calendar.time_zone!r}")
    if calendar.country_code and calendar.country_code not in holidays.list_supported_countries():
        violations.add(f"{field_path}.country_code", f"has no public holiday list: {calendar.country_code!r}")
    periods = sorted(calendar.opening_hours)
    if not periods:
        violations.add(f"{field_path}.opening_hours", "must open at least once a week")
    for index, period in enumerate(periods):
        if not (0 <= period.weekday <= 6 and 0 <= period.opens < period.closes <= MINUTES_PER_DAY):
            violations.add(f"{field_path}.opening_hours", f"period {index} must open before it closes, within a day")
        elif index and periods[index - 1].weekday == period.weekday and periods[index - 1].closes > period.opens:
            violations.add(f"{field_path}.opening_hours", f"period {index} overlaps the one before")
    violations.raise_if_any()


def _intervals_from(calendar: BusinessCalendar, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The open intervals from the one holding `moment` on, in order and never overlapping (a period
    that daylight saving moved over the one before starts where that one ends)."""
    day = moment.astimezone(calendar.zone).date() - timedelta(days=1)
    previous_end: datetime | None = None
    for _ in range(_SEARCH_DAYS):
        for start, end in calendar.open_intervals(day):
            if previous_end is not None and start < previous_end:
                start = previous_end
            if end <= start:
                continue
            previous_end = end
            if end > moment:
                yield max(start, moment), end
        day += timedelta(days=1)


def business_time_between(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Open time from `start` to `end`; zero when `end` is not after `start`."""
    total = timedelta(0)
    if end <= start:
        return total
    for open_start, open_end in _intervals_from(calendar, start):
        if open_start >= end:
            break
        total += min(open_end, end) - open_start
    return total


def add_business_time(calendar: BusinessCalendar, start: datetime, amount: timedelta) -> datetime:
    """The moment when `amount` of open time has passed after `start` (`start` itself for none)."""
    if amount <= timedelta(0):
        return start
    remaining = amount
    for open_start, open_end in _intervals_from(calendar, start):
        available = open_end - open_start
        if remaining <= available:
            return open_start + remaining
        remaining -= available
    raise FailedPrecondition(
        "CALENDAR_NEVER_OPEN", f"the calendar has no open time in {_SEARCH_DAYS} days", {"zone": calendar.time_zone}
    )


def add_business_days(calendar: BusinessCalendar, start: datetime, days: int) -> datetime:
    """The end of the `days`-th open day after `start`'s day (for "the customer has N business days")."""
    counted = 0
    day = start.astimezone(calendar.zone).date()
    for _ in range(_SEARCH_DAYS):
        day += timedelta(days=1)
        intervals = calendar.open_intervals(day)
        if intervals:
            counted += 1
            if counted >= days:
                return intervals[-1][1]
    raise FailedPrecondition(
        "CALENDAR_NEVER_OPEN", f"the calendar has no open day in {_SEARCH_DAYS} days", {"zone": calendar.time_zone}
    )


WEEKDAYS_NINE_TO_SIX = tuple(OpeningPeriod(day, 9 * 60, 18 * 60) for day in range(5))
"""Monday to Friday, 09:00 to 18:00: the hours of a department created without its own."""
