"""Tariff advice kept as evidence of what was shown: the answer as sent, with what KPIs count."""

import uuid
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.offers.advice import Advice


async def keep_advice(
    session: AsyncSession,
    recommendation_id: uuid.UUID,
    customer_id: uuid.UUID,
    subscription_id: uuid.UUID,
    advice: Advice,
    answer: bytes,
    now: datetime,
) -> None:
    """Writes the advice given to a line."""
    saving = advice.monthly_saving
    recommended = advice.recommended
    await session.execute(
        text(
            "INSERT INTO tariff_recommendations (id, customer_id, subscription_id, outcome, current_plan, "
            "recommended_plan, currency, monthly_saving_minor, answer, create_time) VALUES (:id, :customer, "
            ":subscription, :outcome, :current, :recommended, :currency, :saving, :answer, :now)"
        ),
        {
            "id": recommendation_id,
            "customer": customer_id,
            "subscription": subscription_id,
            "outcome": advice.outcome.value,
            "current": advice.current_plan,
            "recommended": recommended.plan.name if recommended else "",
            "currency": saving.currency if saving else "",
            "saving": saving.minor if saving else 0,
            "answer": answer,
            "now": now,
        },
    )


async def advice_answer(session: AsyncSession, recommendation_id: uuid.UUID) -> bytes | None:
    """The answer given, as sent."""
    answer = await session.scalar(
        text("SELECT answer FROM tariff_recommendations WHERE id = :id"), {"id": recommendation_id}
    )
    return bytes(answer) if answer is not None else None
