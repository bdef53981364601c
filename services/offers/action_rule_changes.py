"""Use cases of action rules and the contact policy over a database session."""

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.errors import AlreadyExists, not_found
from services.offers import action_rule_store, catalog_store
from services.offers.action_rules import ActionRule, ContactPolicy, checked_rule, updated_policy, updated_rule
from services.offers.resource_names import offering_name


async def create_rule(session: AsyncSession, rule: ActionRule, now: datetime) -> ActionRule:
    """Adds a rule as version 1; ALREADY_EXISTS when its id is taken, NOT_FOUND for an unknown offering."""
    created = replace(checked_rule(rule), version=1, create_time=now, update_time=now)
    await _ensure_offering(session, created)
    if not await action_rule_store.insert_rule(session, created, current_caller().subject):
        raise AlreadyExists(
            "ACTION_RULE_EXISTS", f"{created.name} exists already; choose another id", {"resource_name": created.name}
        )
    return created


async def get_rule(session: AsyncSession, rule_id: str) -> ActionRule:
    """One rule; NOT_FOUND when there is none."""
    rule = await action_rule_store.get_rule(session, rule_id)
    if rule is None:
        raise not_found("action rule", f"actionRules/{rule_id}")
    return rule


async def locked_rule(session: AsyncSession, rule_id: str) -> ActionRule:
    """One rule, locked for its update; NOT_FOUND when there is none."""
    rule = await action_rule_store.get_rule(session, rule_id, lock=True)
    if rule is None:
        raise not_found("action rule", f"actionRules/{rule_id}")
    return rule


async def update_rule(
    session: AsyncSession, current: ActionRule, patch: ActionRule, paths: list[str], expected: int | None, now: datetime
) -> ActionRule:
    """Writes the next version of a rule (read locked) with the masked fields changed."""
    updated = updated_rule(current, patch, paths, expected_version=expected, now=now)
    await _ensure_offering(session, updated)
    await action_rule_store.update_rule(session, updated, current_caller().subject)
    return updated


async def update_policy(
    session: AsyncSession, patch: ContactPolicy, paths: list[str], expected: int | None, now: datetime
) -> ContactPolicy:
    """Writes the contact policy's next version with the masked fields changed."""
    current = await action_rule_store.contact_policy(session, lock=True)
    updated = updated_policy(current, patch, paths, expected_version=expected, now=now)
    await action_rule_store.write_contact_policy(session, updated, current_caller().subject, now)
    return updated


async def _ensure_offering(session: AsyncSession, rule: ActionRule) -> None:
    if not rule.offering:
        return
    offering_name(rule.offering, "action_rule.offering")
    if await catalog_store.get_offering(session, rule.offering) is None:
        raise not_found("product offering", rule.offering)
