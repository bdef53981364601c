"""The read model of what next-best actions need of a customer, kept from the customer and loyalty
feeds: the customer's segments and churn-risk score, their loyalty accounts' tiers, their lines and
the lines' monthly usage."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MAX_LINES = 20
"""Most lines of one customer a decision looks at."""


@dataclass(frozen=True)
class KnownLine:
    """A customer's active line as the customer feed announced it."""

    subscription_id: uuid.UUID
    tariff_plan: str
    home_region: str


async def apply_segment_change(
    session: AsyncSession,
    customer_id: uuid.UUID,
    entered: Sequence[str],
    left: Sequence[str],
    churn_risk_score: float,
    now: datetime,
) -> None:
    """Moves the customer into the segments `entered` and out of those `left`."""
    await session.execute(
        text(
            "INSERT INTO customer_segments (customer_id, segments, churn_risk_score, update_time) "
            "VALUES (:c, ARRAY(SELECT DISTINCT unnest(CAST(:entered AS text[])) ORDER BY 1), "
            ":score, :now) ON CONFLICT (customer_id) DO UPDATE SET segments = ARRAY("
            "SELECT unnest(customer_segments.segments) EXCEPT SELECT unnest(CAST(:left AS text[])) "
            "UNION SELECT unnest(CAST(:entered AS text[])) ORDER BY 1), "
            # An event of the value ranking alone carries no score: the last one stands.
            "churn_risk_score = CASE WHEN excluded.churn_risk_score > 0 THEN excluded.churn_risk_score "
            "ELSE customer_segments.churn_risk_score END, update_time = excluded.update_time"
        ),
        {"c": customer_id, "entered": list(entered), "left": list(left), "score": churn_risk_score, "now": now},
    )


async def segments_of(session: AsyncSession, customer_id: uuid.UUID) -> frozenset[str]:
    """The segments the customer is in, as last announced."""
    segments = await session.scalar(
        text("SELECT segments FROM customer_segments WHERE customer_id = :c"), {"c": customer_id}
    )
    return frozenset(segments or ())


async def open_account(session: AsyncSession, account: str, customer_id: uuid.UUID, tier: str, now: datetime) -> None:
    """Keeps a loyalty account of the customer with its tier."""
    await session.execute(
        text(
            "INSERT INTO loyalty_accounts (account, customer_id, tier, update_time) VALUES (:a, :c, :tier, :now) "
            "ON CONFLICT (account) DO UPDATE SET tier = excluded.tier, update_time = excluded.update_time"
        ),
        {"a": account, "c": customer_id, "tier": tier, "now": now},
    )


async def change_tier(session: AsyncSession, account: str, tier: str, now: datetime) -> bool:
    """Moves a known account to `tier`; False when the account is not known."""
    result = await session.execute(
        text("UPDATE loyalty_accounts SET tier = :tier, update_time = :now WHERE account = :a RETURNING account"),
        {"a": account, "tier": tier, "now": now},
    )
    return result.first() is not None


async def close_account(session: AsyncSession, account: str) -> None:
    """Forgets a closed account."""
    await session.execute(text("DELETE FROM loyalty_accounts WHERE account = :a"), {"a": account})


async def tier_of(session: AsyncSession, customer_id: uuid.UUID) -> str:
    """The tier of the customer's loyalty account (the most recently changed one); empty when none."""
    tier = await session.scalar(
        text("SELECT tier FROM loyalty_accounts WHERE customer_id = :c ORDER BY update_time DESC LIMIT 1"),
        {"c": customer_id},
    )
    return str(tier or "")


async def active_lines(session: AsyncSession, customer_id: uuid.UUID) -> list[KnownLine]:
    """The customer's active lines, as the customer feed announced them."""
    rows = await session.execute(
        text(
            "SELECT subscription_id, tariff_plan, home_region FROM lines WHERE customer_id = :c AND active "
            "ORDER BY subscription_id LIMIT :limit"
        ),
        {"c": customer_id, "limit": MAX_LINES},
    )
    return [KnownLine(row.subscription_id, row.tariff_plan, row.home_region) for row in rows]


async def keep_month_usage(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    customer_id: uuid.UUID,
    month: date,
    usage: bytes,
    now: datetime,
) -> None:
    """Keeps a line's month of usage (a `crm.customer.v1.MonthlyUsage`) as last announced."""
    await session.execute(
        text(
            "INSERT INTO line_usage_months (subscription_id, customer_id, month, usage, update_time) "
            "VALUES (:s, :c, :month, :usage, :now) ON CONFLICT (subscription_id, month) DO UPDATE SET "
            "usage = excluded.usage, update_time = excluded.update_time"
        ),
        {"s": subscription_id, "c": customer_id, "month": month, "usage": usage, "now": now},
    )


async def months_of_usage(session: AsyncSession, customer_id: uuid.UUID, since: date) -> dict[uuid.UUID, list[bytes]]:
    """The customer's lines' months of usage from `since`, newest first, by line."""
    rows = await session.execute(
        text(
            "SELECT subscription_id, usage FROM line_usage_months WHERE customer_id = :c AND month >= :since "
            "ORDER BY month DESC LIMIT :limit"
        ),
        {"c": customer_id, "since": since, "limit": MAX_LINES * 12},
    )
    found: dict[uuid.UUID, list[bytes]] = {}
    for row in rows:
        found.setdefault(row.subscription_id, []).append(bytes(row.usage))
    return found


async def forget_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Erasure: drops the customer's segments, loyalty tiers and usage."""
    for statement in (
        "DELETE FROM line_usage_months WHERE customer_id = :c",
        "DELETE FROM customer_segments WHERE customer_id = :c",
        "DELETE FROM loyalty_accounts WHERE customer_id = :c",
    ):
        await session.execute(text(statement), {"c": customer_id})
