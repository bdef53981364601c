"""What segmentation reads from the other parts of the service about one customer, in one place: the
profile and status (customers), the start of their tenure (customers), spend and debt (billing) and
the recent months of usage (usage)."""

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.billing.use_cases import billing_summary
from services.customer.customers.lifecycle import Customer
from services.customer.customers.lookup import first_activation_date
from services.customer.customers.profile import Individual
from services.customer.segments.rules import MonthTotals, SegmentInputs
from services.customer.usage.use_cases import recent_customer_months

USAGE_MONTHS = 4
"""Complete months of usage the rules compare (the current month is still being counted)."""


async def segment_inputs(session: AsyncSession, customer: Customer, today: date) -> SegmentInputs:
    """What the rules need to know about one customer as of `today`."""
    summary = await billing_summary(session, customer.id, today)
    first_activation = await first_activation_date(session, customer.id)
    months = await recent_customer_months(session, customer.id, today.replace(day=1), USAGE_MONTHS)
    party = customer.profile.party
    address = customer.profile.home_address
    return SegmentInputs(
        is_individual=isinstance(party, Individual),
        organization_kind=None if isinstance(party, Individual) else party.kind,
        status=customer.status,
        churn_reason=customer.churn_reason,
        birth_date=party.birth_date if isinstance(party, Individual) else None,
        region=address.region if address else "",
        first_activation=first_activation,
        average_monthly_spend=summary.average_monthly_spend,
        days_overdue=summary.days_overdue,
        late_payment_count=summary.late_payment_count,
        months=[MonthTotals(m.month, m.voice_minutes, m.on_net_minutes, m.data_mb, m.roaming_days) for m in months],
    )
