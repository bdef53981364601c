"""Usage ingestion and profiles against a real PostgreSQL, through the client-streaming gRPC API."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.type import date_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.database import Database
from crm.customer.v1 import customer_pb2, customer_service_pb2, events_pb2, usage_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from services.customer.usage import store
from services.customer.usage.publisher import fold_pending, publish_changed_months
from services.customer.usage.settings import UsageSettings
from tests.support import create_request, failure, international_format, line, person, request_id, unique_mobile

TODAY = datetime.now(UTC).date()
THIS_MONTH = TODAY.replace(day=1)
LAST_MONTH = (THIS_MONTH - timedelta(days=1)).replace(day=1)


@pytest.fixture
def usage(customer_channel: grpc.aio.Channel) -> UsageServiceStub:
    return UsageServiceStub(customer_channel)


async def new_line(stub: CustomerServiceStub) -> customer_pb2.Subscription:
    customer = await stub.CreateCustomer(create_request(person()), timeout=5)
    return await stub.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(
            parent=customer.name, subscription=line(), request_id=request_id()
        ),
        timeout=5,
    )


def record(msisdn: str, day: date, **values: object) -> usage_pb2.UsageRecord:
    fields: dict[str, object] = {
        "record_id": f"r-{uuid.uuid4()}",
        "msisdn": msisdn,
        "usage_date": date_pb2.Date(year=day.year, month=day.month, day=day.day),
        "on_net_minutes": 10.0,
        "off_net_minutes": 5.0,
        "data_mb": 100.0,
        "sms_count": 2,
        "area": "Toshkent",
        "radio_technology": usage_pb2.RADIO_TECHNOLOGY_4G,
    }
    fields.update(values)
    return usage_pb2.UsageRecord(**fields)  # type: ignore[arg-type]


async def ingest(stub: UsageServiceStub, *batches: Sequence[usage_pb2.UsageRecord]) -> usage_pb2.IngestUsageResponse:
    async def stream() -> AsyncIterator[usage_pb2.IngestUsageRequest]:
        for batch in batches:
            yield usage_pb2.IngestUsageRequest(records=list(batch))

    return await stub.IngestUsage(stream(), timeout=30)


async def folded(customer_database: Database) -> None:
    """Returns once every stored record is folded into the profiles (the folder runs in the background
    too; folding waits for the transactions that stored records to end)."""
    async with asyncio.timeout(15):
        while True:
            await fold_pending(customer_database)
            async with customer_database.transaction() as session:
                pending = await session.execute(
                    text(
                        "SELECT count(*) FROM usage_records "
                        "WHERE ingest_xid >= (SELECT done_below FROM usage_fold_state WHERE id = 1)"
                    )
                )
                if pending.scalar_one() == 0:
                    return
            await asyncio.sleep(0.02)


async def profile(stub: UsageServiceStub, subscription: str, months: int = 0) -> usage_pb2.UsageProfile:
    return await stub.GetUsageProfile(
        usage_pb2.GetUsageProfileRequest(name=f"{subscription}/usageProfile", months=months), timeout=5
    )


async def test_records_fold_into_monthly_totals_days_and_areas(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    subscription = await new_line(customer_stub)
    msisdn = subscription.msisdn
    first, second = LAST_MONTH + timedelta(days=2), LAST_MONTH + timedelta(days=5)
    records = [
        record(msisdn, first, data_mb=100.0),
        record(msisdn, first, data_mb=50.0, area="Samarqand", radio_technology=usage_pb2.RADIO_TECHNOLOGY_3G),
        record(msisdn, second, roaming=True, area="Abroad", international_minutes=3.0),
        record(msisdn, THIS_MONTH, data_mb=7.0),
    ]
    reply = await ingest(usage, records)
    assert (reply.accepted, reply.duplicates, reply.rejected) == (4, 0, 0)
    await folded(customer_database)
    months = (await profile(usage, subscription.name)).months
    assert [(m.month.year, m.month.month) for m in months] == [
        (THIS_MONTH.year, THIS_MONTH.month),
        (LAST_MONTH.year, LAST_MONTH.month),
    ]
    last = months[1]
    assert last.record_count == 3 and last.active_days == 2 and last.roaming_days == 1
    assert last.data_mb == pytest.approx(250.0)
    assert last.on_net_minutes == pytest.approx(30.0) and last.international_minutes == pytest.approx(3.0)
    assert last.sms_count == 6
    assert last.subscription == subscription.name
    areas = {(a.area, a.radio_technology): (a.record_count, a.data_mb) for a in last.areas}
    assert areas == {
        ("Toshkent", usage_pb2.RADIO_TECHNOLOGY_4G): (1, 100.0),
        ("Samarqand", usage_pb2.RADIO_TECHNOLOGY_3G): (1, 50.0),
        ("Abroad", usage_pb2.RADIO_TECHNOLOGY_4G): (1, 100.0),
    }


async def test_a_replayed_batch_adds_nothing(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    subscription = await new_line(customer_stub)
    batch = [record(subscription.msisdn, LAST_MONTH + timedelta(days=d)) for d in range(5)]
    await ingest(usage, batch)
    await folded(customer_database)
    before = await profile(usage, subscription.name)
    assert before.months[0].record_count == 5 and before.months[0].active_days == 5
    reply = await ingest(usage, batch, batch[:2])
    assert (reply.accepted, reply.duplicates, reply.rejected) == (0, 7, 0)
    await folded(customer_database)
    assert await profile(usage, subscription.name) == before


async def test_a_batch_repeating_some_stored_records_stores_only_the_others(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    subscription = await new_line(customer_stub)
    stored = [record(subscription.msisdn, LAST_MONTH + timedelta(days=d), data_mb=1.0) for d in range(3)]
    await ingest(usage, stored)
    new = [record(subscription.msisdn, LAST_MONTH + timedelta(days=d), data_mb=10.0) for d in range(3, 5)]
    reply = await ingest(usage, [new[0], *stored, new[1]])
    assert (reply.accepted, reply.duplicates, reply.rejected) == (2, 3, 0)
    await folded(customer_database)
    month = (await profile(usage, subscription.name)).months[0]
    assert month.record_count == 5 and month.active_days == 5
    assert month.data_mb == pytest.approx(23.0)


async def test_a_repeated_record_within_a_batch_counts_once(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    subscription = await new_line(customer_stub)
    repeated = record(subscription.msisdn, LAST_MONTH)
    reply = await ingest(usage, [repeated, repeated, repeated])
    assert (reply.accepted, reply.duplicates) == (1, 2)
    await folded(customer_database)
    assert (await profile(usage, subscription.name)).months[0].record_count == 1


async def test_bad_records_are_rejected_alone_with_reasons(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    subscription = await new_line(customer_stub)
    msisdn = subscription.msisdn
    good = record(msisdn, LAST_MONTH, data_mb=42.0)
    bad = {
        "UNKNOWN_MSISDN": record(unique_mobile("UZ"), LAST_MONTH),
        "INVALID_MSISDN": record("12", LAST_MONTH),
        "MISSING_RECORD_ID": record(msisdn, LAST_MONTH, record_id=""),
        "FUTURE_DATE": record(msisdn, TODAY + timedelta(days=2)),
        "INVALID_DATE": record(msisdn, LAST_MONTH, usage_date=date_pb2.Date(year=2026, month=2, day=30)),
        "INVALID_VALUE": record(msisdn, LAST_MONTH, data_mb=-1.0),
    }
    reply = await ingest(usage, [good, *bad.values()])
    assert (reply.accepted, reply.duplicates, reply.rejected) == (1, 0, len(bad))
    assert {r.reason for r in reply.rejections} == set(bad)
    await folded(customer_database)
    month = (await profile(usage, subscription.name)).months[0]
    assert month.record_count == 1 and month.data_mb == pytest.approx(42.0)


async def test_a_national_format_number_is_matched_and_a_terminated_line_is_unknown(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub
):
    subscription = await new_line(customer_stub)
    written = international_format(subscription.msisdn)
    reply = await ingest(usage, [record(written, LAST_MONTH)])
    assert reply.accepted == 1
    await customer_stub.UpdateSubscription(
        customer_service_pb2.UpdateSubscriptionRequest(
            subscription=customer_pb2.Subscription(
                name=subscription.name, status=customer_pb2.SUBSCRIPTION_STATUS_TERMINATED
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        timeout=5,
    )
    reply = await ingest(usage, [record(subscription.msisdn, LAST_MONTH)])
    assert reply.rejected == 1 and reply.rejections[0].reason == "UNKNOWN_MSISDN"


async def test_concurrent_streams_with_overlapping_records_count_each_once(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    subscriptions = [await new_line(customer_stub) for _ in range(3)]
    records = [record(s.msisdn, LAST_MONTH + timedelta(days=d % 20)) for s in subscriptions for d in range(200)]
    streams = [(records[i::2], records) for i in range(4)]
    replies = await asyncio.gather(*(ingest(usage, *batches) for batches in streams))
    sent = sum(len(batch) for batches in streams for batch in batches)
    assert [r.rejected for r in replies] == [0] * 4
    assert sum(r.accepted for r in replies) == len(records)
    assert sum(r.duplicates for r in replies) == sent - len(records)
    await folded(customer_database)
    for subscription in subscriptions:
        month = (await profile(usage, subscription.name)).months[0]
        assert month.record_count == 200 and month.active_days == 20


async def test_profile_months_limit_and_bad_requests(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    subscription = await new_line(customer_stub)
    await ingest(usage, [record(subscription.msisdn, THIS_MONTH), record(subscription.msisdn, LAST_MONTH)])
    await folded(customer_database)
    assert len((await profile(usage, subscription.name, months=1)).months) == 1
    assert len((await profile(usage, subscription.name, months=2)).months) == 2
    code, error = await failure(profile(usage, subscription.name, months=37))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and [v.field for v in error.violations] == ["months"]  # type: ignore[attr-defined]
    unknown = subscription.name.rsplit("/", 1)[0] + f"/{uuid.uuid4()}"
    code, error = await failure(profile(usage, unknown))
    assert code == grpc.StatusCode.NOT_FOUND and error.reason == "SUBSCRIPTION_NOT_FOUND"
    code, _ = await failure(usage.GetUsageProfile(usage_pb2.GetUsageProfileRequest(name=subscription.name), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_each_changed_line_month_is_announced_once(
    customer_stub: CustomerServiceStub,
    usage: UsageServiceStub,
    customer_engine: AsyncEngine,
    customer_database: Database,
):
    subscription = await new_line(customer_stub)
    customer = subscription.name.split("/subscriptions/")[0]
    await ingest(usage, [record(subscription.msisdn, LAST_MONTH), record(subscription.msisdn, THIS_MONTH)])
    await folded(customer_database)
    # The background publisher may hold some rows in its own transaction (publishing skips rows another
    # holds): wait, bounded, until no row of the line is left unannounced, then count the events.
    async with asyncio.timeout(15):
        while True:
            while await publish_changed_months(customer_database):
                pass
            async with customer_engine.connect() as connection:
                dirty = (
                    await connection.execute(
                        text("SELECT count(*) FROM monthly_usage WHERE subscription_id = :s AND dirty"),
                        {"s": subscription.name.rsplit("/", 1)[1]},
                    )
                ).scalar_one()
            if dirty == 0:
                break
            await asyncio.sleep(0.05)
    async with customer_engine.connect() as connection:
        payloads = (
            await connection.execute(
                text("SELECT payload FROM outbox WHERE aggregateid = :a AND type = :t ORDER BY seq"),
                {"a": customer, "t": events_pb2.MonthlyUsageUpdated.DESCRIPTOR.full_name},
            )
        ).scalars()
        announced = [events_pb2.MonthlyUsageUpdated.FromString(p).usage for p in payloads]
    assert sorted((u.month.month, u.record_count) for u in announced) == sorted(
        [(LAST_MONTH.month, 1), (THIS_MONTH.month, 1)]
    )
    assert dirty == 0


async def test_erasure_removes_where_the_lines_were_used(
    customer_stub: CustomerServiceStub,
    usage: UsageServiceStub,
    customer_database: Database,
    customer_engine: AsyncEngine,
):
    subscription = await new_line(customer_stub)
    await ingest(usage, [record(subscription.msisdn, LAST_MONTH, area="Chirchiq")])
    await folded(customer_database)
    await customer_stub.UpdateSubscription(
        customer_service_pb2.UpdateSubscriptionRequest(
            subscription=customer_pb2.Subscription(
                name=subscription.name, status=customer_pb2.SUBSCRIPTION_STATUS_TERMINATED
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        timeout=5,
    )
    customer = subscription.name.split("/subscriptions/")[0]
    await customer_stub.EraseCustomer(
        customer_service_pb2.EraseCustomerRequest(name=customer, request_id=request_id()), timeout=5
    )
    month = (await profile(usage, subscription.name)).months[0]
    assert month.record_count == 1 and list(month.areas) == []
    async with customer_engine.connect() as connection:
        areas = await connection.execute(
            text("SELECT count(*) FROM monthly_usage_areas WHERE subscription_id = :s"),
            {"s": subscription.name.rsplit("/", 1)[1]},
        )
        assert areas.scalar_one() == 0


async def test_records_of_an_erased_customer_folded_late_keep_no_location(
    customer_stub: CustomerServiceStub, customer_database: Database, customer_engine: AsyncEngine
):
    subscription = await new_line(customer_stub)
    await customer_stub.UpdateSubscription(
        customer_service_pb2.UpdateSubscriptionRequest(
            subscription=customer_pb2.Subscription(
                name=subscription.name, status=customer_pb2.SUBSCRIPTION_STATUS_TERMINATED
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        timeout=5,
    )
    customer = subscription.name.split("/subscriptions/")[0]
    await customer_stub.EraseCustomer(
        customer_service_pb2.EraseCustomerRequest(name=customer, request_id=request_id()), timeout=5
    )
    line_id, customer_id = subscription.name.rsplit("/", 1)[1], customer.removeprefix("customers/")
    async with customer_engine.begin() as connection:
        # A record stored just before the erasure, still waiting for the folder.
        await connection.execute(
            text(
                "INSERT INTO usage_records (record_id, subscription_id, customer_id, usage_date, on_net_minutes, "
                "off_net_minutes, international_minutes, sms_count, data_mb, roaming, area, radio_technology) "
                "VALUES (:r, :s, :c, :d, 1, 0, 0, 0, 5, false, 'Chirchiq', '4G')"
            ),
            {"r": f"late-{uuid.uuid4()}", "s": line_id, "c": customer_id, "d": LAST_MONTH},
        )
    await folded(customer_database)
    async with customer_engine.connect() as connection:
        areas = await connection.execute(
            text("SELECT count(*) FROM monthly_usage_areas WHERE subscription_id = :s"), {"s": line_id}
        )
        totals = await connection.execute(
            text("SELECT record_count FROM monthly_usage WHERE subscription_id = :s"), {"s": line_id}
        )
        assert areas.scalar_one() == 0
        assert totals.scalar_one() == 1


async def test_records_of_days_older_than_the_retention_are_refused_as_expired(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub
):
    subscription = await new_line(customer_stub)
    oldest = TODAY - timedelta(days=UsageSettings().record_retention_days)
    older = record(subscription.msisdn, oldest - timedelta(days=1))
    reply = await ingest(usage, [record(subscription.msisdn, oldest), older])
    assert (reply.accepted, reply.rejected) == (1, 1)
    assert [(r.record_id, r.reason) for r in reply.rejections] == [(older.record_id, "EXPIRED_DATE")]


async def test_a_record_id_sent_again_for_another_day_is_another_record(
    customer_stub: CustomerServiceStub, usage: UsageServiceStub, customer_database: Database
):
    subscription = await new_line(customer_stub)
    first = record(subscription.msisdn, LAST_MONTH)
    other_day = record(subscription.msisdn, LAST_MONTH + timedelta(days=1), record_id=first.record_id)
    await ingest(usage, [first])
    reply = await ingest(usage, [first, other_day])
    assert (reply.accepted, reply.duplicates) == (1, 1)
    await folded(customer_database)
    assert (await profile(usage, subscription.name)).months[-1].record_count == 2


async def test_folding_asks_only_the_erased_customers_whatever_the_number_of_customers(
    large_customer_table: AsyncEngine,
):
    # 200,000 customers, none erased, and a backlog of records to fold: which of a chunk's customers are
    # erased is read from the index of the erased, never from every customer (a cost that would grow
    # with the customer base). The records are rolled back: other tests share the database.
    async with large_customer_table.connect() as connection, connection.begin() as transaction:
        await connection.execute(text(_BACKLOG))
        await connection.execute(text("ANALYZE usage_records"))
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute("SET LOCAL enable_sort = off")  # as the folder runs it
        rows = await driver.fetch("EXPLAIN (COSTS OFF) " + store._FOLD, "0", "1000000", "0", 0, store.FOLD_CHUNK)
        await transaction.rollback()
    plan = "\n".join(row[0] for row in rows)
    assert "Seq Scan on customers" not in plan, plan


_BACKLOG = """
INSERT INTO usage_records (record_id, subscription_id, customer_id, usage_date, on_net_minutes, off_net_minutes,
    international_minutes, sms_count, data_mb, roaming, area, radio_technology)
SELECT 'plan-' || s.id, s.id, s.customer_id, current_date - 40, 1, 1, 0, 1, 10, false, 'Toshkent', '4G'
FROM subscriptions s LIMIT 50000
"""
