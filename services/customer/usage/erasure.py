"""What erasure leaves of a customer's usage."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.personal_data import CustomerData
from services.customer.usage import store


async def erase_usage(session: AsyncSession, customer_id: uuid.UUID, now: datetime) -> None:
    """Removes where the customer's lines were used; records folded later keep no area either (the
    folder skips areas of erased customers). The monthly totals stay: without the lines' numbers they
    describe no one."""
    await store.forget_locations(session, customer_id)


USAGE_DATA = CustomerData(
    part="usage",
    tables={
        "usage_records": (
            "kept as counted, area included, until their day's partition is dropped after the retention "
            "(CUSTOMER_USAGE_RECORD_RETENTION_DAYS): no index finds one customer's records, and one would "
            "cost every record ingested an index entry"
        ),
        "monthly_usage": "kept: monthly totals of lines that no longer have a number",
        "monthly_usage_areas": "deleted: where the lines were used is location data",
    },
    erase=erase_usage,
)
"""What the usage part holds about a customer, and how it erases it."""
