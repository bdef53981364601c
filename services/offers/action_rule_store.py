"""The tables of next-best-action rules and the contact policy."""

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import rows_affected
from chassis.pagination import PageRequest
from services.offers.action_rules import ActionKind, ActionRule, ContactPolicy

MAX_ACTIVE_RULES = 500
"""Most active rules one decision weighs; marketing keeps a few dozen."""

_RULE_COLUMNS = [f.name for f in fields(ActionRule)]
_LISTS = ("required_segments", "excluded_segments", "loyalty_tiers", "regions", "channels")


async def insert_rule(session: AsyncSession, rule: ActionRule, author: str) -> bool:
    """Writes a new rule; False when its id is taken."""
    columns = ", ".join([*_RULE_COLUMNS, "updater"])
    values = ", ".join(f":{name}" for name in [*_RULE_COLUMNS, "updater"])
    result = await session.execute(
        text(f"INSERT INTO action_rules ({columns}) VALUES ({values}) ON CONFLICT (rule_id) DO NOTHING"),
        {**_rule_row(rule), "updater": author},
    )
    return rows_affected(result) == 1


async def update_rule(session: AsyncSession, rule: ActionRule, author: str) -> None:
    """Writes a rule's new version."""
    assignments = ", ".join(f"{name} = :{name}" for name in [*_RULE_COLUMNS, "updater"] if name != "rule_id")
    await session.execute(
        text(f"UPDATE action_rules SET {assignments} WHERE rule_id = :rule_id"), {**_rule_row(rule), "updater": author}
    )


async def get_rule(session: AsyncSession, rule_id: str, *, lock: bool = False) -> ActionRule | None:
    """One rule, locked for an update when `lock`."""
    row = (
        await session.execute(
            text(f"SELECT * FROM action_rules WHERE rule_id = :id{' FOR UPDATE' if lock else ''}"), {"id": rule_id}
        )
    ).first()
    return rule_from_row(row) if row else None


async def list_rules(session: AsyncSession, page: PageRequest) -> list[ActionRule]:
    """A page of rules by id, after the page's id."""
    rows = await session.execute(
        text("SELECT * FROM action_rules WHERE rule_id > :after ORDER BY rule_id LIMIT :limit"),
        {"after": str(page.after[0]) if page.after else "", "limit": page.fetch_size},
    )
    return [rule_from_row(row) for row in rows]


async def active_rules(session: AsyncSession, market: str) -> list[ActionRule]:
    """The active rules for `market` (and those for every market)."""
    rows = await session.execute(
        text(
            "SELECT * FROM action_rules WHERE active AND (market = '' OR market = :market) "
            "ORDER BY rule_id LIMIT :limit"
        ),
        {"market": market, "limit": MAX_ACTIVE_RULES},
    )
    return [rule_from_row(row) for row in rows]


async def contact_policy(session: AsyncSession, *, lock: bool = False) -> ContactPolicy:
    """The contact policy in force."""
    row = (
        await session.execute(text(f"SELECT * FROM contact_policy WHERE id = 1{' FOR UPDATE' if lock else ''}"))
    ).one()
    return ContactPolicy(
        max_offers_per_week_per_channel=row.max_offers_per_week_per_channel,
        decline_cooldown_days=row.decline_cooldown_days,
        quiet_hours_start_hour=row.quiet_hours_start_hour,
        quiet_hours_end_hour=row.quiet_hours_end_hour,
        quiet_hours_channels=tuple(row.quiet_hours_channels),
        version=row.version,
        update_time=row.update_time,
    )


async def write_contact_policy(session: AsyncSession, policy: ContactPolicy, author: str, now: datetime) -> None:
    """Writes the contact policy's new version."""
    await session.execute(
        text(
            "UPDATE contact_policy SET max_offers_per_week_per_channel = :cap, decline_cooldown_days = :cooldown, "
            "quiet_hours_start_hour = :start, quiet_hours_end_hour = :end, quiet_hours_channels = :channels, "
            "version = :version, update_time = :now, updater = :author WHERE id = 1"
        ),
        {
            "cap": policy.max_offers_per_week_per_channel,
            "cooldown": policy.decline_cooldown_days,
            "start": policy.quiet_hours_start_hour,
            "end": policy.quiet_hours_end_hour,
            "channels": list(policy.quiet_hours_channels),
            "version": policy.version,
            "now": now,
            "author": author,
        },
    )


def rule_from_row(row: Row[Any]) -> ActionRule:
    """A rule as stored."""
    values = {name: getattr(row, name) for name in _RULE_COLUMNS}
    for name in _LISTS:
        values[name] = tuple(values[name])
    values["kind"] = ActionKind(values["kind"])
    return ActionRule(**values)


def _rule_row(rule: ActionRule) -> dict[str, object]:
    row: dict[str, object] = {name: getattr(rule, name) for name in _RULE_COLUMNS}
    for name in _LISTS:
        row[name] = list(getattr(rule, name))
    row["kind"] = rule.kind.value
    return row
