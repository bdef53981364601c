"""The current time, handed to every service at assembly so that tests move time instead of sleeping."""

from datetime import UTC, date, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where a service reads the time."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told: it starts at `start` (the system time by default) and stands
    still until `advance` or `set`. Tests hand it to a service to make hours or years pass at once."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        if self._now.tzinfo is None:
            raise ValueError("a clock's time must carry a time zone")

    def now(self) -> datetime:
        """The time the clock was last set or moved to."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Moves the time forward by `delta`; returns the new time."""
        if delta < timedelta(0):
            raise ValueError("time does not run backwards")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        """Puts the clock at `moment` (forward only)."""
        if moment < self._now:
            raise ValueError("time does not run backwards")
        self._now = moment


def today(clock: Clock) -> date:
    """The current calendar date in UTC."""
    return clock.now().date()
