"""Departments, agents and routing rules: the data that routing, assignment and the SLA read."""

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.errors import AlreadyExists, etag_mismatch, not_found
from services.complaints import store
from services.complaints.departments import Agent, Department
from services.complaints.resource_names import AGENT, DEPARTMENT, ROUTING_RULE
from services.complaints.routing import RoutingRule


async def get_department(session: AsyncSession, department_id: str) -> Department:
    """A department; NOT_FOUND when there is none."""
    department = await store.get_department(session, department_id)
    if department is None:
        raise not_found("department", DEPARTMENT.format(department_id))
    return department


async def update_department(session: AsyncSession, department: Department, expected_version: int | None) -> Department:
    """Replaces a department; ABORTED when it changed since `expected_version`."""
    version = await store.update_department(session, department, expected_version)
    if version is None:
        await get_department(session, department.department_id)
        raise etag_mismatch(DEPARTMENT.format(department.department_id))
    return await get_department(session, department.department_id)


async def create_agent(session: AsyncSession, agent: Agent) -> Agent:
    """Adds an agent to an existing department."""
    await get_department(session, agent.department_id)
    if not await store.insert_agent(session, agent):
        raise AlreadyExists("AGENT_EXISTS", f"{AGENT.format(agent.department_id, agent.agent_id)} exists already")
    return agent


async def update_agent(session: AsyncSession, agent: Agent) -> Agent:
    """Changes an agent's availability or seniority."""
    updated = await store.update_agent(session, agent)
    if updated is None:
        raise not_found("agent", AGENT.format(agent.department_id, agent.agent_id))
    return updated


async def create_rule(session: AsyncSession, rule: RoutingRule) -> RoutingRule:
    """Adds a routing rule towards an existing department."""
    await get_department(session, rule.department)
    if not await store.insert_routing_rule(session, rule):
        raise AlreadyExists("ROUTING_RULE_EXISTS", f"{ROUTING_RULE.format(rule.rule_id)} exists already")
    return rule
