"""Customers and lines in the real customer service, with usage ingested and folded into their
profiles, for the offers integration tests."""

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from chassis.database import Database
from crm.customer.v1 import customer_service_pb2, usage_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from services.customer.usage.publisher import fold_pending
from tests.support import create_request, line, person, proto_day, request_id, unique_mobile


@dataclass(frozen=True)
class Day:
    """One day of a line's use in one area on one technology."""

    day: date
    area: str = "Toshkent"
    technology: usage_pb2.RadioTechnology = usage_pb2.RADIO_TECHNOLOGY_4G
    on_net_minutes: float = 0.0
    off_net_minutes: float = 0.0
    sms: int = 0
    data_mb: float = 0.0


def last_month(day: int) -> date:
    """A day of the month before the current one (kept by the customer service's usage retention)."""
    first_of_this_month = datetime.now(UTC).date().replace(day=1)
    last_day = first_of_this_month - timedelta(days=1)
    return last_day.replace(day=min(day, last_day.day))


async def open_line(customers: CustomerServiceStub, *, plan: str, home_region: str) -> tuple[str, str]:
    """A new customer with one active line on `plan`; returns the line's name and number."""
    customer = await customers.CreateCustomer(create_request(person()), timeout=5)
    msisdn = unique_mobile("UZ")
    wanted = line(msisdn, plan=plan)
    wanted.home_region = home_region
    created = await customers.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(
            parent=customer.name, subscription=wanted, request_id=request_id()
        ),
        timeout=5,
    )
    return created.name, msisdn


async def use_line(
    usage: UsageServiceStub, customer_database: Database, subscription: str, msisdn: str, days: Sequence[Day]
) -> None:
    """Sends the days' records to the customer service and folds them into the line's profile."""
    records = [
        usage_pb2.UsageRecord(
            record_id=f"r-{uuid.uuid4()}",
            msisdn=msisdn,
            usage_date=proto_day(day.day),
            on_net_minutes=day.on_net_minutes,
            off_net_minutes=day.off_net_minutes,
            sms_count=day.sms,
            data_mb=day.data_mb,
            area=day.area,
            radio_technology=day.technology,
        )
        for day in days
    ]

    async def stream() -> AsyncIterator[usage_pb2.IngestUsageRequest]:
        yield usage_pb2.IngestUsageRequest(records=records)

    answer = await usage.IngestUsage(stream(), timeout=30)
    assert answer.accepted == len(records), answer
    for _ in range(200):
        await fold_pending(customer_database)
        async with customer_database.transaction() as session:
            pending = (
                await session.execute(
                    text(
                        "SELECT count(*) FROM usage_records "
                        "WHERE ingest_xid >= (SELECT done_below FROM usage_fold_state WHERE id = 1)"
                    )
                )
            ).scalar_one()
        if pending == 0:
            return
    raise AssertionError(f"the usage of {subscription} was not folded")
