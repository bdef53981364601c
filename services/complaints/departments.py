"""Departments as the domain sees them: a calendar, an SLA plan and an assignment policy."""

from dataclasses import dataclass

from chassis.errors import InvalidArgument, Violations
from services.complaints.business_time import BusinessCalendar, check_calendar
from services.complaints.lifecycle import FINAL_STATES, State
from services.complaints.routing import AssignmentPolicy
from services.complaints.sla import Priority, SlaPlan

DEFAULT_DEPARTMENT = "customer-care"
"""Where tickets go when no routing rule matches (created by the first migration)."""


@dataclass(frozen=True)
class Department:
    """A department that works tickets."""

    department_id: str
    display_name: str
    calendar: BusinessCalendar
    plan: SlaPlan
    assignment_policy: AssignmentPolicy
    version: int = 1


@dataclass(frozen=True)
class Agent:
    """An agent of a department."""

    department_id: str
    agent_id: str
    display_name: str
    available: bool
    senior: bool
    open_complaints: int = 0


def check_department(department: Department) -> None:
    """INVALID_ARGUMENT naming every bad part: name, calendar, targets (one per priority, positive),
    paused states (open, waiting ones only) and the warning share."""
    violations = Violations()
    if not department.display_name.strip():
        violations.add("department.display_name", "is required")
    try:
        check_calendar(department.calendar, "department.calendar")
    except InvalidArgument as error:
        # One answer names every bad field, the calendar's with the rest.
        violations.items.extend(error.violations)
    for priority in Priority:
        target = department.plan.targets.get(priority)
        if target is None:
            violations.add("department.sla_targets", f"needs a target for priority {priority}")
        elif target.first_response.total_seconds() <= 0 or target.resolution.total_seconds() <= 0:
            violations.add("department.sla_targets", f"targets of priority {priority} must be positive")
    for state in department.plan.paused_states:
        if state in FINAL_STATES or state in (State.RESOLVED, State.ACKNOWLEDGED):
            violations.add("department.paused_states", f"{state} cannot pause the clock")
    if not 0 < department.plan.warning_share < 1:
        violations.add("department.warning_share", "must be between 0 and 1")
    violations.raise_if_any()
