"""What erasure leaves of a customer's billing facts."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.personal_data import CustomerData


async def erase_billing(session: AsyncSession, customer_id: uuid.UUID, now: datetime) -> None:
    """Changes nothing: invoices and payments are accounting records the operator must keep, and they
    carry no name, number or address, only ids and amounts of a customer who is now a shell."""


BILLING_DATA = CustomerData(
    part="billing",
    tables={
        "invoices": "kept: accounting records, with ids, amounts and dates only",
        "payments": "kept: accounting records, with ids, amounts and dates only",
    },
    erase=erase_billing,
)
"""What the billing part holds about a customer, and why erasure keeps it."""
