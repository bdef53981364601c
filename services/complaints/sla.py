"""A ticket's SLA in business time: the plan of its department and priority, the clock that runs
while the ticket is worked and stands still while it waits, and what is due when.

The clock keeps the business time counted in earlier running periods and, while running, since
when it runs; every pause and resume folds the running period into the count, so due times are
recomputed at each of them.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from chassis.errors import FailedPrecondition
from services.complaints.business_time import BusinessCalendar, add_business_time, business_time_between
from services.complaints.lifecycle import DEFAULT_PAUSED_STATES, OPEN_STATES, State

DEFAULT_WARNING_SHARE = 0.8


class Priority(StrEnum):
    """How soon a ticket must be worked."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"

    def raised(self) -> "Priority":
        """One step more urgent (urgent stays urgent)."""
        order = list(Priority)
        return order[min(order.index(self) + 1, len(order) - 1)]


@dataclass(frozen=True)
class SlaTarget:
    """Targets of one priority."""

    first_response: timedelta
    resolution: timedelta


@dataclass(frozen=True)
class SlaPlan:
    """A department's SLA plan."""

    targets: Mapping[Priority, SlaTarget]
    paused_states: frozenset[State] = DEFAULT_PAUSED_STATES
    warning_share: float = DEFAULT_WARNING_SHARE

    def target(self, priority: Priority) -> SlaTarget:
        """The targets of `priority`; FAILED_PRECONDITION when the plan has none."""
        found = self.targets.get(priority)
        if found is None:
            raise FailedPrecondition("NO_SLA_TARGET", f"the plan has no target for priority {priority}")
        return found

    def clock_runs_in(self, state: State) -> bool:
        """Whether time in `state` counts towards the resolution target."""
        return state in OPEN_STATES and state not in self.paused_states


@dataclass(frozen=True)
class SlaClock:
    """Business time counted towards a ticket's resolution target."""

    counted: timedelta
    """Business time of the running periods that ended."""
    running_since: datetime | None
    """Start of the running period; None while paused."""

    @classmethod
    def started(cls, at: datetime) -> "SlaClock":
        """A clock starting at `at`."""
        return cls(timedelta(0), at)

    @property
    def paused(self) -> bool:
        """Whether the clock stands still."""
        return self.running_since is None

    def elapsed(self, calendar: BusinessCalendar, now: datetime) -> timedelta:
        """Business time counted up to `now`."""
        if self.running_since is None:
            return self.counted
        return self.counted + business_time_between(calendar, self.running_since, now)

    def pause(self, calendar: BusinessCalendar, at: datetime) -> "SlaClock":
        """The clock stopped at `at` (unchanged when stopped already)."""
        if self.running_since is None:
            return self
        return SlaClock(self.elapsed(calendar, at), None)

    def resume(self, at: datetime) -> "SlaClock":
        """The clock running again from `at` (unchanged when running already)."""
        return self if self.running_since is not None else replace(self, running_since=at)

    def follow(self, calendar: BusinessCalendar, plan: SlaPlan, state: State, at: datetime) -> "SlaClock":
        """The clock after the ticket entered `state` at `at`: running or paused as the plan says."""
        return self.resume(at) if plan.clock_runs_in(state) else self.pause(calendar, at)

    def due(self, calendar: BusinessCalendar, target: timedelta) -> datetime | None:
        """When the count reaches `target` while the clock keeps running; None while paused."""
        if self.running_since is None:
            return None
        return add_business_time(calendar, self.running_since, max(target - self.counted, timedelta(0)))


@dataclass(frozen=True)
class SlaMilestones:
    """What a ticket's SLA still waits for, as moments: what the breach scan compares with now."""

    first_response_due: datetime | None
    """When the first response is due, while none came and its breach was not announced."""
    warning_due: datetime | None
    """When the warning is due, while running and not yet announced."""
    resolution_due: datetime | None
    """When the resolution is due, while running and its breach was not announced."""

    @property
    def next_check(self) -> datetime | None:
        """The soonest of them: the scan looks at the ticket from then on."""
        moments = [m for m in (self.first_response_due, self.warning_due, self.resolution_due) if m is not None]
        return min(moments) if moments else None


def milestones(
    calendar: BusinessCalendar,
    clock: SlaClock,
    target: SlaTarget,
    warning_share: float,
    *,
    first_response_due: datetime,
    responded: bool,
    response_breach_announced: bool,
    warned: bool,
    resolution_breach_announced: bool,
) -> SlaMilestones:
    """The moments still ahead of a ticket's SLA."""
    warning_target = target.resolution * warning_share
    return SlaMilestones(
        first_response_due=None if responded or response_breach_announced else first_response_due,
        warning_due=None if warned or resolution_breach_announced else clock.due(calendar, warning_target),
        resolution_due=None if resolution_breach_announced else clock.due(calendar, target.resolution),
    )
