"""Routing rules as data, round-robin fairness, least busy, and the VIP queue."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.complaints.routing import (
    VIP_SEGMENT,
    AgentLoad,
    AssignmentPolicy,
    Queue,
    RoutingFacts,
    RoutingRule,
    choose_agent,
    route,
)
from services.complaints.sla import Priority

RULES = [
    RoutingRule("billing", "billing", Priority.MEDIUM, category="billing_dispute"),
    RoutingRule("billing-shop", "retail", Priority.HIGH, category="billing_dispute", channel="retail_shop"),
    RoutingRule("network-kyiv", "network-ua", Priority.HIGH, category="network", region="Київська область"),
]


def facts(category: str = "billing_dispute", channel: str = "app", region: str = "", vip: bool = False) -> RoutingFacts:
    return RoutingFacts(category, channel, frozenset({VIP_SEGMENT} if vip else ()), region)


def test_the_most_specific_matching_rule_decides():
    assert (
        route(RULES, facts(channel="retail_shop"), default_department="care", default_priority=Priority.LOW).rule_id
        == "billing-shop"
    )
    assert route(RULES, facts(), default_department="care", default_priority=Priority.LOW).department == "billing"


def test_no_matching_rule_goes_to_the_default_department():
    chosen = route(RULES, facts(category="device"), default_department="care", default_priority=Priority.LOW)
    assert (chosen.department, chosen.priority, chosen.rule_id) == ("care", Priority.LOW, "")


def test_a_region_matches_ignoring_case():
    chosen = route(
        RULES, facts("network", region="КИЇВСЬКА ОБЛАСТЬ"), default_department="care", default_priority=Priority.LOW
    )
    assert chosen.department == "network-ua"


def test_a_vip_customer_goes_to_the_senior_queue_one_priority_higher():
    chosen = route(RULES, facts(vip=True), default_department="care", default_priority=Priority.LOW)
    assert (chosen.queue, chosen.priority) == (Queue.SENIOR, Priority.HIGH)


def _assign_many(agents: list[AgentLoad], policy: AssignmentPolicy, tickets: int) -> Counter[str]:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    handed: Counter[str] = Counter()
    for n in range(tickets):
        chosen = choose_agent(agents, policy, Queue.STANDARD)
        assert chosen is not None
        handed[chosen] += 1
        agents = [
            replace(a, open_complaints=a.open_complaints + 1, last_assign_time=now + timedelta(seconds=n))
            if a.agent_id == chosen
            else a
            for a in agents
        ]
    return handed


def test_round_robin_hands_n_agents_n_times_k_tickets_k_each():
    agents = [AgentLoad(f"agent-{i}", True, False, 0, None) for i in range(4)]
    assert set(_assign_many(agents, AssignmentPolicy.ROUND_ROBIN, 12).values()) == {3}


def test_least_busy_hands_the_ticket_to_the_agent_with_fewest_open_ones():
    agents = [
        AgentLoad("busy", True, False, 9, None),
        AgentLoad("idle", True, False, 1, datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    assert choose_agent(agents, AssignmentPolicy.LEAST_BUSY, Queue.STANDARD) == "idle"


def test_unavailable_agents_get_nothing_and_the_senior_queue_only_seniors():
    agents = [AgentLoad("away", False, True, 0, None), AgentLoad("junior", True, False, 0, None)]
    assert choose_agent(agents, AssignmentPolicy.ROUND_ROBIN, Queue.STANDARD) == "junior"
    assert choose_agent(agents, AssignmentPolicy.ROUND_ROBIN, Queue.SENIOR) is None
