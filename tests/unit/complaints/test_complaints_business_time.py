"""Business time on department calendars, with Hypothesis: measuring never decreases, a pause never
adds elapsed time, adding N business minutes then measuring gives N; and a ticket pending over a
weekend and a public holiday does not breach while the same ticket in progress does."""

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.complaints.business_time import (
    WEEKDAYS_NINE_TO_SIX,
    BusinessCalendar,
    OpeningPeriod,
    add_business_time,
    business_time_between,
)
from services.complaints.lifecycle import State
from services.complaints.sla import Priority, SlaClock, SlaPlan, SlaTarget

TASHKENT = BusinessCalendar("Asia/Tashkent", WEEKDAYS_NINE_TO_SIX, "UZ")
ZONES = ["Asia/Tashkent", "Europe/Kyiv", "Asia/Ho_Chi_Minh", "Europe/London", "America/New_York"]


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    periods = []
    for weekday in draw(st.sets(st.integers(0, 6), min_size=1)):
        # At least an hour a week, so that 20,000 business minutes fit in the ten years looked ahead.
        opens = draw(st.integers(0, 23 * 60))
        closes = draw(st.integers(opens + 60, 24 * 60))
        periods.append(OpeningPeriod(weekday, opens, closes))
    company = draw(st.frozensets(st.dates(date(2025, 1, 1), date(2027, 12, 31)), max_size=5))
    return BusinessCalendar(
        draw(st.sampled_from(ZONES)), tuple(periods), draw(st.sampled_from(["", "UZ", "UA", "VN"])), company
    )


moments = st.datetimes(datetime(2025, 1, 1), datetime(2027, 6, 30), timezones=st.just(UTC))
spans = st.timedeltas(timedelta(0), timedelta(days=40))


@settings(max_examples=150, deadline=None)
@given(calendars(), moments, spans, spans)
def test_elapsed_business_time_never_decreases(calendar: BusinessCalendar, start: datetime, a: timedelta, b: timedelta):
    earlier, later = sorted((a, b))
    assert business_time_between(calendar, start, start + earlier) <= business_time_between(
        calendar, start, start + later
    )


@settings(max_examples=150, deadline=None)
@given(calendars(), moments, st.integers(0, 20_000))
def test_adding_n_business_minutes_then_measuring_gives_n(calendar: BusinessCalendar, start: datetime, minutes: int):
    amount = timedelta(minutes=minutes)
    assert business_time_between(calendar, start, add_business_time(calendar, start, amount)) == amount


@settings(max_examples=150, deadline=None)
@given(calendars(), moments, spans, spans, spans)
def test_a_pause_never_adds_elapsed_time(
    calendar: BusinessCalendar, start: datetime, before: timedelta, pause: timedelta, after: timedelta
):
    paused_at = start + before
    resumed_at = paused_at + pause
    now = resumed_at + after
    paused_clock = SlaClock.started(start).pause(calendar, paused_at).resume(resumed_at)
    running_clock = SlaClock.started(start)
    assert paused_clock.elapsed(calendar, now) <= running_clock.elapsed(calendar, now)


PLAN = SlaPlan({p: SlaTarget(timedelta(hours=1), timedelta(hours=10)) for p in Priority})


def test_a_ticket_pending_over_a_weekend_and_a_holiday_does_not_breach_while_one_in_progress_does():
    # Friday 6 March 2026, 17:00 in Tashkent; Monday 9 March is Women's Day (observed) in Uzbekistan.
    friday = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    tuesday_noon = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
    worked = SlaClock.started(friday - timedelta(hours=7))
    pending = worked.follow(TASHKENT, PLAN, State.PENDING, friday)
    resumed = pending.follow(TASHKENT, PLAN, State.IN_PROGRESS, tuesday_noon - timedelta(hours=1))
    assert resumed.elapsed(TASHKENT, tuesday_noon) < PLAN.target(Priority.MEDIUM).resolution
    assert worked.elapsed(TASHKENT, tuesday_noon) >= PLAN.target(Priority.MEDIUM).resolution


def test_company_working_days_open_a_public_holiday_and_company_holidays_close_a_weekday():
    holiday = date(2026, 3, 9)
    assert TASHKENT.open_intervals(holiday) == []
    reopened = BusinessCalendar("Asia/Tashkent", WEEKDAYS_NINE_TO_SIX, "UZ", company_working_days=frozenset({holiday}))
    assert len(reopened.open_intervals(holiday)) == 1
    closed = BusinessCalendar(
        "Asia/Tashkent", WEEKDAYS_NINE_TO_SIX, "UZ", company_holidays=frozenset({date(2026, 3, 10)})
    )
    assert closed.open_intervals(date(2026, 3, 10)) == []


def test_ukraine_lists_no_public_holidays_so_every_weekday_is_open():
    kyiv = BusinessCalendar("Europe/Kyiv", WEEKDAYS_NINE_TO_SIX, "UA")
    assert kyiv.open_intervals(date(2026, 1, 1)) != []
