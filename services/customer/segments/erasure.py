"""What erasure leaves of a customer's segments."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.personal_data import CustomerData
from services.customer.segments.use_cases import forget_customer_segments


async def erase_segments(session: AsyncSession, customer_id: uuid.UUID, now: datetime) -> None:
    """Removes the customer from every segment, unannounced (even segment names tell where they lived and
    how old they were), and drops their score; the evaluator keeps an erased customer out afterwards."""
    await forget_customer_segments(session, customer_id)


SEGMENTS_DATA = CustomerData(
    part="segments",
    tables={
        "segment_memberships": "deleted: memberships and their evidence describe the person",
        "customer_scores": "deleted: score, factors and spend",
    },
    erase=erase_segments,
)
"""What the segments part holds about a customer, and how it erases it."""
