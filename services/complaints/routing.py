"""Routing rules as data and the choice of an agent: which department and priority a new ticket
gets, and which of the department's agents works it.

The most specific matching rule wins (most criteria given, ties by rule id); a VIP customer's ticket
goes to the senior queue one priority higher. Round robin hands the ticket to the available agent
who got one longest ago (so n agents share n*k tickets k each); least busy to the one holding
fewest open tickets. Senior-queue tickets go to senior agents only.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.complaints.sla import Priority

VIP_SEGMENT = "segments/value-vip"
"""The customer service's segment of its most valuable customers."""


class Queue(StrEnum):
    """Where a ticket waits for an agent."""

    STANDARD = "standard"
    SENIOR = "senior"


class AssignmentPolicy(StrEnum):
    """How a department picks the agent of a ticket."""

    ROUND_ROBIN = "round_robin"
    LEAST_BUSY = "least_busy"


@dataclass(frozen=True)
class RoutingFacts:
    """What routing looks at in a new ticket and its customer."""

    category: str
    channel: str
    segments: frozenset[str]
    region: str

    @property
    def vip(self) -> bool:
        """Whether the customer is in the VIP segment."""
        return VIP_SEGMENT in self.segments


@dataclass(frozen=True)
class RoutingRule:
    """Tickets matching every given criterion go to `department` with `priority`; empty matches any."""

    rule_id: str
    department: str
    priority: Priority
    category: str = ""
    channel: str = ""
    segment: str = ""
    region: str = ""

    @property
    def specificity(self) -> int:
        """How many criteria the rule gives."""
        return sum(1 for criterion in (self.category, self.channel, self.segment, self.region) if criterion)

    def matches(self, facts: RoutingFacts) -> bool:
        """Whether a ticket with `facts` meets every criterion of the rule."""
        return (
            (not self.category or self.category == facts.category)
            and (not self.channel or self.channel == facts.channel)
            and (not self.segment or self.segment in facts.segments)
            and (not self.region or self.region.casefold() == facts.region.casefold())
        )


@dataclass(frozen=True)
class Route:
    """Where a ticket goes."""

    department: str
    priority: Priority
    queue: Queue
    rule_id: str
    """The rule that decided; empty when none matched."""


def route(
    rules: Sequence[RoutingRule], facts: RoutingFacts, *, default_department: str, default_priority: Priority
) -> Route:
    """The route of a ticket: its most specific matching rule's, or the defaults; VIP customers to the
    senior queue one priority higher."""
    matching = sorted((rule for rule in rules if rule.matches(facts)), key=lambda r: (-r.specificity, r.rule_id))
    department, priority, rule_id = default_department, default_priority, ""
    if matching:
        department, priority, rule_id = matching[0].department, matching[0].priority, matching[0].rule_id
    if facts.vip:
        return Route(department, priority.raised(), Queue.SENIOR, rule_id)
    return Route(department, priority, Queue.STANDARD, rule_id)


@dataclass(frozen=True)
class AgentLoad:
    """An agent as assignment sees it."""

    agent_id: str
    available: bool
    senior: bool
    open_complaints: int
    last_assign_time: datetime | None


def choose_agent(agents: Sequence[AgentLoad], policy: AssignmentPolicy, queue: Queue) -> str | None:
    """The agent to hand a ticket of `queue` to; None when no fitting agent is available (it waits
    in the queue unassigned)."""
    candidates = [a for a in agents if a.available and (a.senior or queue is Queue.STANDARD)]
    if not candidates:
        return None

    def longest_waiting(agent: AgentLoad) -> tuple[bool, datetime | None, str]:
        # Never assigned comes first; then the oldest assignment.
        return (agent.last_assign_time is not None, agent.last_assign_time, agent.agent_id)

    if policy is AssignmentPolicy.LEAST_BUSY:
        chosen = min(candidates, key=lambda a: (a.open_complaints, *_comparable(longest_waiting(a))))
    else:
        chosen = min(candidates, key=lambda a: _comparable(longest_waiting(a)))
    return chosen.agent_id


def _comparable(key: tuple[bool, datetime | None, str]) -> tuple[bool, float, str]:
    assigned, when, agent_id = key
    return (assigned, when.timestamp() if when is not None else 0.0, agent_id)
