"""What the contact policy and propensity read of the offers presented: a customer's recent offers
and declines, and the take-up counted per rule and segment (kept as counters, so that a decision
never reads the whole history)."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.offers.next_best_actions import ContactHistory, TakeUp, TakeUpHistory

WEEK = timedelta(days=7)


async def contact_history(
    session: AsyncSession, customer_id: uuid.UUID, channel: str, cooldown: timedelta, now: datetime
) -> ContactHistory:
    """Offers presented to the customer on `channel` in the last 7 days, and their declines within `cooldown`."""
    offers = await offers_this_week(session, customer_id, channel, now)
    declines = await session.execute(
        text(
            "SELECT rule_id, max(decide_time) AS declined FROM offer_presentations WHERE customer_id = :c "
            "AND state = 'DECLINED' AND decide_time > :since GROUP BY rule_id"
        ),
        {"c": customer_id, "since": now - cooldown},
    )
    return ContactHistory(offers, {row.rule_id: row.declined for row in declines})


async def offers_this_week(
    session: AsyncSession, customer_id: uuid.UUID, channel: str, now: datetime, *, lock: bool = False
) -> int:
    """Offers presented to the customer on `channel` in the last 7 days. With `lock`, counted holding
    the customer's lock for the channel until the transaction ends, so that offers to one customer on
    one channel are written one at a time, each after counting those before it."""
    if lock:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"offer-contacts/{customer_id}/{channel}"},
        )
    offers = await session.scalar(
        text(
            "SELECT count(*) FROM offer_presentations WHERE customer_id = :c AND channel = :channel "
            "AND present_time > :since AND kind <> 'SERVICE_MESSAGE'"
        ),
        {"c": customer_id, "channel": channel, "since": now - WEEK},
    )
    return int(offers or 0)


async def take_up(session: AsyncSession, rule_ids: Sequence[str], segments: Sequence[str]) -> TakeUpHistory:
    """Take-up of the rules by the segments given and overall (segment "")."""
    rows = await session.execute(
        text(
            "SELECT rule_id, segment, presented, accepted FROM offer_take_up WHERE rule_id = ANY(:rules) "
            "AND segment = ANY(:segments)"
        ),
        {"rules": list(rule_ids), "segments": ["", *segments]},
    )
    return {(row.rule_id, row.segment): TakeUp(row.presented, row.accepted) for row in rows}


async def count_presented(session: AsyncSession, rule_id: str, segments: Sequence[str]) -> None:
    """Counts one presentation of the rule for every segment given and overall."""
    await _count(session, rule_id, segments, presented=1, accepted=0)


async def count_accepted(session: AsyncSession, rule_id: str, segments: Sequence[str]) -> None:
    """Counts one acceptance of the rule for every segment given and overall."""
    await _count(session, rule_id, segments, presented=0, accepted=1)


async def _count(
    session: AsyncSession, rule_id: str, segments: Sequence[str], *, presented: int, accepted: int
) -> None:
    await session.execute(
        text(
            "INSERT INTO offer_take_up (rule_id, segment, presented, accepted) "
            "SELECT :rule, segment, :presented, :accepted FROM unnest(CAST(:segments AS text[])) AS segment "
            "ON CONFLICT (rule_id, segment) DO UPDATE SET presented = offer_take_up.presented + excluded.presented, "
            "accepted = offer_take_up.accepted + excluded.accepted"
        ),
        {"rule": rule_id, "segments": ["", *sorted(set(segments))], "presented": presented, "accepted": accepted},
    )
