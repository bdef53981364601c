"""Points from the customer service's events, by the program's rules: the in-process customer
service produces real events (customers, lines, bills, usage, erasure); the loyalty consumer applies
them to the loyalty database; the loyalty service's API and SQL show the effects."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import ManualClock
from chassis.database import Database, create_engine
from chassis.event_consumer import EventConsumer
from chassis.settings import DatabaseSettings
from crm.common.v1.events_pb2 import Event
from crm.customer.v1 import customer_service_pb2, usage_pb2
from crm.customer.v1 import events_pb2 as customer_events_pb2
from crm.customer.v1.billing_pb2_grpc import BillingServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.customer.v1.usage_pb2_grpc import UsageServiceStub
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, program_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.customer.usage.publisher import fold_pending, publish_changed_months
from services.loyalty import earning
from tests.event_support import feed_end, read_feed, unpack
from tests.integration.loyalty.conftest import ProgramChange
from tests.integration.loyalty.ledger_checks import holdings_state
from tests.support import bill_and_pay, create_request, failure, line, person, proto_day, request_id

ProgramChanged = Callable[[ProgramChange], AbstractAsyncContextManager[program_pb2.Program]]
ApplyEvents = Callable[[], Awaitable[int]]
TODAY = datetime.now(UTC).date()
PAYMENT_RECORDED = customer_events_pb2.PaymentRecorded.DESCRIPTOR.full_name


@pytest.fixture
async def loyalty_database(loyalty_database_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(DatabaseSettings(url=loyalty_database_url), application_name="tests"))
    yield database
    await database.close()


@pytest.fixture
async def apply_events(
    customer_channel: grpc.aio.Channel,
    customer_engine: AsyncEngine,
    loyalty_database: Database,
    loyalty_clock: ManualClock,
) -> AsyncIterator[ApplyEvents]:
    """`await apply_events()` applies every customer event committed so far to the loyalty database."""
    consumer = EventConsumer(
        name=earning.CONSUMER_NAME,
        producer=earning.PRODUCER_NAME,
        feed=customer_channel,
        database=loyalty_database,
        handler=earning.customer_event_handler(loyalty_clock),
        event_types=earning.EVENT_TYPES,
    )

    async def catch_up() -> int:
        await feed_end(customer_engine)
        return await consumer.catch_up(timeout_seconds=60)

    yield catch_up


@pytest.fixture
def billing(customer_channel: grpc.aio.Channel) -> BillingServiceStub:
    return BillingServiceStub(customer_channel)


@pytest.fixture
def usage(customer_channel: grpc.aio.Channel) -> UsageServiceStub:
    return UsageServiceStub(customer_channel)


def account_of(customer: str) -> str:
    return "accounts/" + customer.removeprefix("customers/")


async def rule_entries(engine: AsyncEngine, account: str) -> list[tuple[str, int, str, str]]:
    """(rule, points, source key, source event) of the account's credits by rules, oldest first."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT rule, points, source_key, coalesce(source_event::text, '') AS source_event "
                "FROM ledger_entries WHERE account_id = :a AND rule <> '' ORDER BY entry"
            ),
            {"a": account.removeprefix("accounts/")},
        )
        return [(row.rule, row.points, row.source_key, row.source_event) for row in rows]


async def new_customer(stub: CustomerServiceStub, region: str = "Toshkent viloyati") -> str:
    return (await stub.CreateCustomer(create_request(person(region=region)), timeout=5)).name


def uzs(units: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="UZS", units=units)


async def test_a_created_customer_gets_an_empty_account_in_the_lowest_tier(
    customer_stub: CustomerServiceStub, loyalty_stub: LoyaltyServiceStub, apply_events: ApplyEvents
):
    customer = await new_customer(customer_stub)
    await apply_events()
    account = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account_of(customer)), timeout=5)
    assert (account.customer, account.tier, account.entry_count, account.state) == (
        customer,
        "bronze",
        0,
        loyalty_pb2.ACCOUNT_STATE_ACTIVE,
    )


async def payment_event(customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine, payment: str) -> Event:
    """The PaymentRecorded event the customer service announced for the payment, as the feed serves it."""
    customer = payment.split("/payments/")[0]
    async with customer_engine.connect() as connection:
        positions = (
            await connection.execute(
                text("SELECT position FROM outbox WHERE aggregateid = :customer AND type = :type ORDER BY position"),
                {"customer": customer, "type": PAYMENT_RECORDED},
            )
        ).scalars()
        first = min(positions)
    events = await read_feed(customer_channel, after=first - 1, event_types=[PAYMENT_RECORDED])
    found = [e for e in events if unpack(e, customer_events_pb2.PaymentRecorded()).payment.name == payment]
    assert len(found) == 1, f"{len(found)} events announce {payment}"
    return found[0]


async def test_a_payment_earns_by_its_rule_and_the_entry_names_the_rule_and_the_event(
    customer_stub: CustomerServiceStub,
    billing: BillingServiceStub,
    loyalty_stub: LoyaltyServiceStub,
    customer_channel: grpc.aio.Channel,
    customer_engine: AsyncEngine,
    apply_events: ApplyEvents,
):
    customer = await new_customer(customer_stub)
    payment = await bill_and_pay(billing, customer, uzs(85_700))
    await apply_events()
    announced = await payment_event(customer_channel, customer_engine, payment)
    entries = await loyalty_stub.ListEntries(
        loyalty_service_pb2.ListEntriesRequest(parent=account_of(customer)), timeout=5
    )
    # 1 point per whole 1,000 UZS, bronze tier (100%).
    assert [(e.points, e.rule, e.source_event, e.source_reference) for e in entries.entries] == [
        (85, "program/earningRules/bill-payments-uzs", announced.event_id, payment)
    ]


async def test_a_payment_announced_again_earns_nothing_more(
    customer_stub: CustomerServiceStub,
    billing: BillingServiceStub,
    loyalty_stub: LoyaltyServiceStub,
    loyalty_engine: AsyncEngine,
    loyalty_database: Database,
    loyalty_clock: ManualClock,
    customer_channel: grpc.aio.Channel,
    customer_engine: AsyncEngine,
    apply_events: ApplyEvents,
):
    customer = await new_customer(customer_stub)
    payment = await bill_and_pay(billing, customer, uzs(85_700))
    await apply_events()
    credits = await rule_entries(loyalty_engine, account_of(customer))
    announced = await payment_event(customer_channel, customer_engine, payment)
    # The same event once more, and the same payment under another event id (a producer that
    # announced it twice): the rule has credited this payment already.
    again = Event()
    again.CopyFrom(announced)
    again.event_id = str(uuid.uuid4())
    for event in (announced, again):
        async with loyalty_database.transaction() as session:
            await earning.apply_customer_event(session, event, loyalty_clock.now())

    assert await rule_entries(loyalty_engine, account_of(customer)) == credits
    account = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account_of(customer)), timeout=5)
    assert (account.available_points, account.entry_count) == (85, 1)


async def test_a_payment_in_a_currency_without_a_rule_earns_nothing(
    customer_stub: CustomerServiceStub,
    billing: BillingServiceStub,
    loyalty_engine: AsyncEngine,
    apply_events: ApplyEvents,
):
    customer = await new_customer(customer_stub)
    await bill_and_pay(billing, customer, money_pb2.Money(currency_code="KZT", units=50_000))
    await apply_events()
    assert await rule_entries(loyalty_engine, account_of(customer)) == []


async def test_the_first_line_in_service_earns_the_welcome_bonus_once(
    customer_stub: CustomerServiceStub, loyalty_engine: AsyncEngine, apply_events: ApplyEvents
):
    customer = await new_customer(customer_stub)
    for _ in range(2):
        await customer_stub.CreateSubscription(
            customer_service_pb2.CreateSubscriptionRequest(
                parent=customer, subscription=line(), request_id=request_id()
            ),
            timeout=5,
        )
    await apply_events()
    credits = await rule_entries(loyalty_engine, account_of(customer))
    assert [(rule, points, key) for rule, points, key, _ in credits] == [("first-activation", 200, "first-activation")]


def usage_records(msisdn: str, count: int) -> list[usage_pb2.UsageRecord]:
    """`count` records of today, each 1 GB of data and 15 minutes of calls."""
    return [
        usage_pb2.UsageRecord(
            record_id=f"r-{uuid.uuid4()}",
            msisdn=msisdn,
            usage_date=proto_day(TODAY),
            on_net_minutes=10.0,
            off_net_minutes=5.0,
            data_mb=1000.0,
            area="Toshkent",
            radio_technology=usage_pb2.RADIO_TECHNOLOGY_4G,
        )
        for _ in range(count)
    ]


async def ingest_and_announce(
    usage: UsageServiceStub, customer_database: Database, records: Sequence[usage_pb2.UsageRecord]
) -> None:
    async def stream() -> AsyncIterator[usage_pb2.IngestUsageRequest]:
        yield usage_pb2.IngestUsageRequest(records=list(records))

    await usage.IngestUsage(stream(), timeout=30)
    for _ in range(100):
        await fold_pending(customer_database)
        if not await publish_changed_months(customer_database):
            async with customer_database.transaction() as session:
                pending = (
                    await session.execute(
                        text(
                            "SELECT count(*) FROM usage_records "
                            "WHERE ingest_xid >= (SELECT done_below FROM usage_fold_state WHERE id = 1)"
                        )
                    )
                ).scalar_one()
                dirty = (await session.execute(text("SELECT count(*) FROM monthly_usage WHERE dirty"))).scalar_one()
            if pending == 0 and dirty == 0:
                return
    raise AssertionError("usage was not folded and announced")


async def test_usage_earns_only_the_increase_and_stops_at_the_monthly_cap(
    customer_stub: CustomerServiceStub,
    usage: UsageServiceStub,
    customer_database: Database,
    loyalty_engine: AsyncEngine,
    apply_events: ApplyEvents,
):
    customer = await new_customer(customer_stub)
    subscription = await customer_stub.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(parent=customer, subscription=line(), request_id=request_id()),
        timeout=5,
    )
    await ingest_and_announce(usage, customer_database, usage_records(subscription.msisdn, 3))
    await apply_events()
    first = await rule_entries(loyalty_engine, account_of(customer))
    # 3 GB at 10 points a GB; 45 minutes at 1 point per 10 minutes.
    assert sorted((rule, points) for rule, points, _, _ in first if rule != "first-activation") == [
        ("data-usage", 30),
        ("voice-usage", 4),
    ]
    await ingest_and_announce(usage, customer_database, usage_records(subscription.msisdn, 30))
    await apply_events()
    totals: dict[str, int] = {}
    for rule, points, _, _ in await rule_entries(loyalty_engine, account_of(customer)):
        totals[rule] = totals.get(rule, 0) + points
    # 33 GB would be 330 points: capped at 200; 495 minutes: 49 points, under its cap of 100.
    assert (totals["data-usage"], totals["voice-usage"]) == (200, 49)


async def erase(stub: CustomerServiceStub, customer: str) -> None:
    request = customer_service_pb2.EraseCustomerRequest(name=customer, request_id=request_id())
    await stub.EraseCustomer(request, timeout=5)


async def test_erasure_closes_the_account_blanks_its_reasons_and_keeps_its_numbers(
    customer_stub: CustomerServiceStub,
    billing: BillingServiceStub,
    loyalty_stub: LoyaltyServiceStub,
    loyalty_engine: AsyncEngine,
    apply_events: ApplyEvents,
):
    erased = await new_customer(customer_stub)
    await bill_and_pay(billing, erased, uzs(40_000))
    await apply_events()
    await erase(customer_stub, erased)
    await apply_events()

    closed = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account_of(erased)), timeout=5)
    assert (closed.state, closed.available_points, closed.lifetime_earned_points) == (
        loyalty_pb2.ACCOUNT_STATE_CLOSED,
        40,
        40,
    )
    entries = await loyalty_stub.ListEntries(
        loyalty_service_pb2.ListEntriesRequest(parent=account_of(erased)), timeout=5
    )
    assert [(e.reason, e.source_reference, e.points) for e in entries.entries] == [("erased", "", 40)]
    async with loyalty_engine.connect() as connection:
        facts = (
            await connection.execute(
                text("SELECT segments, regions, tenure_start FROM accounts WHERE id = :a"),
                {"a": erased.removeprefix("customers/")},
            )
        ).one()
    assert (facts.segments, facts.regions, facts.tenure_start) == ([], [], None)
    counted, scanned = await holdings_state(loyalty_engine)
    assert counted == scanned


async def test_a_closed_account_refuses_points_from_the_api(
    customer_stub: CustomerServiceStub, loyalty_stub: LoyaltyServiceStub, apply_events: ApplyEvents
):
    erased = await new_customer(customer_stub)
    await apply_events()
    await erase(customer_stub, erased)
    await apply_events()
    code, error = await failure(
        loyalty_stub.EarnPoints(
            loyalty_service_pb2.EarnPointsRequest(
                account=account_of(erased), points=5, reason="late credit", request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ACCOUNT_CLOSED")


async def test_payments_after_erasure_earn_nothing_and_later_events_still_apply(
    customer_stub: CustomerServiceStub,
    billing: BillingServiceStub,
    loyalty_engine: AsyncEngine,
    apply_events: ApplyEvents,
):
    erased, other = await new_customer(customer_stub), await new_customer(customer_stub)
    await bill_and_pay(billing, erased, uzs(40_000))
    await apply_events()
    await erase(customer_stub, erased)
    # The billing system still reports a payment of the erased customer, then one of another customer.
    await bill_and_pay(billing, erased, uzs(25_000))
    await bill_and_pay(billing, other, uzs(12_000))
    await apply_events()

    assert [points for _, points, _, _ in await rule_entries(loyalty_engine, account_of(erased))] == [40]
    assert [points for _, points, _, _ in await rule_entries(loyalty_engine, account_of(other))] == [12]


async def test_a_customer_erased_before_its_account_opened_earns_nothing_from_later_payments(
    customer_stub: CustomerServiceStub,
    billing: BillingServiceStub,
    loyalty_stub: LoyaltyServiceStub,
    apply_events: ApplyEvents,
):
    erased = await new_customer(customer_stub)
    # Created, paid and erased while the loyalty service was behind: those events come emptied.
    await bill_and_pay(billing, erased, uzs(30_000))
    await erase(customer_stub, erased)
    await bill_and_pay(billing, erased, uzs(50_000))
    await apply_events()

    account = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account_of(erased)), timeout=5)
    assert (account.state, account.available_points, account.entry_count) == (loyalty_pb2.ACCOUNT_STATE_CLOSED, 0, 0)


def regional_campaign(program: program_pb2.Program) -> None:
    start = Timestamp()
    start.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    end = Timestamp()
    end.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    program.earning_rules.append(
        program_pb2.EarningRule(
            id="samarqand-winter",
            display_name="Winter in Samarqand: 5 extra points per 1,000 UZS",
            trigger=program_pb2.EARNING_TRIGGER_PAYMENT_RECEIVED,
            condition=program_pb2.EarningCondition(
                start_time=start, end_time=end, regions=["Samarqand viloyati"], currency_code="UZS"
            ),
            action=program_pb2.EarningAction(points=5, per_amount=uzs(1000)),
        )
    )


async def test_a_regional_campaign_credits_only_customers_of_its_region(
    customer_stub: CustomerServiceStub,
    billing: BillingServiceStub,
    loyalty_engine: AsyncEngine,
    program_changed: ProgramChanged,
    apply_events: ApplyEvents,
):
    local = await new_customer(customer_stub, region="Samarqand viloyati")
    elsewhere = await new_customer(customer_stub, region="Toshkent viloyati")
    async with program_changed(regional_campaign):
        await apply_events()
        for customer in (local, elsewhere):
            await bill_and_pay(billing, customer, uzs(10_000))
        await apply_events()
    local_credits = [(rule, points) for rule, points, _, _ in await rule_entries(loyalty_engine, account_of(local))]
    other_credits = [(rule, points) for rule, points, _, _ in await rule_entries(loyalty_engine, account_of(elsewhere))]
    assert local_credits == [("bill-payments-uzs", 10), ("samarqand-winter", 50)]
    assert other_credits == [("bill-payments-uzs", 10)]
