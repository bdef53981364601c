"""The right to be forgotten: EraseCustomer against a real PostgreSQL."""

import asyncio
import secrets
from dataclasses import dataclass

import grpc
from google.protobuf import field_mask_pb2
from google.type import date_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chassis.database import async_url, migrate
from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1 import events_pb2 as customer_events
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.customer.app import CUSTOMER
from services.customer.erasure import CUSTOMER_DATA
from tests.event_support import CUSTOMER_ERASED, committed_events, feed_end, follow_events, unpack
from tests.support import create_request, failure, line, request_id, unique_mobile
from tools.postgres import PostgresCluster

CreateLine = customer_service_pb2.CreateSubscriptionRequest


@dataclass
class FormerCustomer:
    """A customer who signed up, had a line, decided on consents, left, and whose data is still held."""

    customer: customer_pb2.Customer
    create: customer_service_pb2.CreateCustomerRequest
    marker: str
    """Unique text in the family name, email and churn detail."""
    phone: str
    msisdn: str

    @property
    def name(self) -> str:
        return self.customer.name

    @property
    def id(self) -> str:
        return self.customer.name.removeprefix("customers/")


async def former_customer(stub: CustomerServiceStub) -> FormerCustomer:
    marker = f"Erasova{secrets.token_hex(4)}"
    phone, msisdn = unique_mobile("UZ"), unique_mobile("UZ")
    create = create_request(
        customer_pb2.Customer(
            individual=customer_pb2.Individual(
                given_name="Madina",
                family_name=marker,
                middle_name="Toxirovna",
                birth_date=date_pb2.Date(year=1991, month=2, day=3),
                gender=customer_pb2.GENDER_FEMALE,
                preferred_language="uz-Latn",
            ),
            contact_media=[
                customer_pb2.ContactMedium(phone_number=phone, preferred=True),
                customer_pb2.ContactMedium(email_address=f"{marker.lower()}@example.org"),
                customer_pb2.ContactMedium(
                    postal_address=common_pb2.PostalAddress(
                        country_code="UZ", region="Samarqand viloyati", city="Urgut", address_lines=["Navoiy 7"]
                    )
                ),
            ],
            acquisition_channel=common_pb2.CHANNEL_APP,
        )
    )
    customer = await stub.CreateCustomer(create, timeout=5)
    await stub.ChangeCustomerStatus(
        customer_service_pb2.ChangeCustomerStatusRequest(
            name=customer.name, status=customer_pb2.CUSTOMER_STATUS_ACTIVE, request_id=request_id()
        ),
        timeout=5,
    )
    created_line = await stub.CreateSubscription(
        CreateLine(parent=customer.name, subscription=line(msisdn), request_id=request_id()), timeout=5
    )
    for decision in (customer_pb2.CONSENT_DECISION_GRANTED, customer_pb2.CONSENT_DECISION_REVOKED):
        await stub.RecordConsent(
            customer_service_pb2.RecordConsentRequest(
                parent=customer.name,
                purpose=customer_pb2.CONSENT_PURPOSE_MARKETING,
                decision=decision,
                channel=common_pb2.CHANNEL_CALL_CENTRE,
                request_id=request_id(),
            ),
            metadata=(("x-crm-caller-subject", "agent-17"), ("x-crm-caller-kind", "employee")),
            timeout=5,
        )
    await stub.UpdateSubscription(terminate(created_line.name), timeout=5)
    churned = await stub.ChangeCustomerStatus(
        customer_service_pb2.ChangeCustomerStatusRequest(
            name=customer.name,
            status=customer_pb2.CUSTOMER_STATUS_CHURNED,
            churn_reason=customer_pb2.CHURN_REASON_PORTED_TO_COMPETITOR,
            churn_detail=f"{marker} moved to another operator",
            request_id=request_id(),
        ),
        timeout=5,
    )
    return FormerCustomer(churned, create, marker, phone, msisdn)


def terminate(subscription_name: str) -> customer_service_pb2.UpdateSubscriptionRequest:
    return customer_service_pb2.UpdateSubscriptionRequest(
        subscription=customer_pb2.Subscription(
            name=subscription_name, status=customer_pb2.SUBSCRIPTION_STATUS_TERMINATED
        ),
        update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        # Its stored answer holds the line's number, so erasure must find it too.
        request_id=request_id(),
    )


def erase(name: str, rid: str | None = None) -> customer_service_pb2.EraseCustomerRequest:
    return customer_service_pb2.EraseCustomerRequest(name=name, request_id=rid or request_id())


async def test_an_erased_customer_reads_back_as_a_shell(customer_stub: CustomerServiceStub):
    former = await former_customer(customer_stub)
    erased = await customer_stub.EraseCustomer(erase(former.name), timeout=5)
    fetched = await customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=former.name), timeout=5)
    assert fetched == erased
    assert fetched.individual == customer_pb2.Individual(given_name="erased", family_name="erased")
    assert list(fetched.contact_media) == [] and fetched.churn_detail == ""
    assert fetched.status == customer_pb2.CUSTOMER_STATUS_CHURNED
    assert fetched.churn_reason == customer_pb2.CHURN_REASON_PORTED_TO_COMPETITOR
    assert fetched.create_time == former.customer.create_time
    lines = await customer_stub.ListSubscriptions(
        customer_service_pb2.ListSubscriptionsRequest(parent=former.name), timeout=5
    )
    [kept] = lines.subscriptions
    assert kept.msisdn == ""
    assert kept.tariff_plan_id == "plans/uz-start-5gb" and kept.activation_date.year == 2019


async def test_personal_data_is_gone_from_every_table(customer_stub: CustomerServiceStub, customer_engine: AsyncEngine):
    former = await former_customer(customer_stub)
    await customer_stub.EraseCustomer(erase(former.name), timeout=5)
    async with customer_engine.connect() as connection:
        for needle in (former.marker, former.marker.lower(), former.phone, former.msisdn):
            for table in ("customers", "subscriptions", "consent_records"):
                rows = await connection.execute(
                    text(f"SELECT count(*) FROM {table} AS t WHERE t::text LIKE '%' || :needle || '%'"),
                    {"needle": needle},
                )
                assert rows.scalar_one() == 0, f"{needle} is still in {table}"
            for table, column in (("idempotency_keys", "response"), ("outbox", "payload")):
                rows = await connection.execute(
                    text(f"SELECT count(*) FROM {table} WHERE position(convert_to(:needle, 'UTF8') IN {column}) > 0"),
                    {"needle": needle},
                )
                assert rows.scalar_one() == 0, f"{needle} is still in {table}.{column}"
        row = (
            await connection.execute(
                text(
                    "SELECT middle_name, birth_date, gender, preferred_language, contact_media, phone_numbers, "
                    "region_key, search_key, churn_detail FROM customers WHERE id = :id"
                ),
                {"id": former.id},
            )
        ).one()
    assert tuple(row) == ("", None, None, "", [], [], "", "", "")


async def test_search_by_a_former_phone_number_or_name_finds_nothing(customer_stub: CustomerServiceStub):
    former = await former_customer(customer_stub)
    await customer_stub.EraseCustomer(erase(former.name), timeout=5)
    for criteria in (
        customer_service_pb2.SearchCustomersRequest(phone_number=former.phone),
        customer_service_pb2.SearchCustomersRequest(phone_number=former.msisdn),
        customer_service_pb2.SearchCustomersRequest(name_query=former.marker),
        customer_service_pb2.SearchCustomersRequest(region="Samarqand viloyati"),
    ):
        found = await customer_stub.SearchCustomers(criteria, timeout=5)
        assert former.name not in {c.name for c in found.customers}


async def test_the_consent_history_still_proves_every_decision(customer_stub: CustomerServiceStub):
    former = await former_customer(customer_stub)
    history = customer_service_pb2.ListConsentRecordsRequest(parent=former.name)
    before = await customer_stub.ListConsentRecords(history, timeout=5)
    await customer_stub.EraseCustomer(erase(former.name), timeout=5)
    after = await customer_stub.ListConsentRecords(history, timeout=5)
    assert after == before
    assert [r.decision for r in after.consent_records] == [
        customer_pb2.CONSENT_DECISION_REVOKED,
        customer_pb2.CONSENT_DECISION_GRANTED,
    ]
    assert {r.recorder for r in after.consent_records} == {"agent-17"}


async def test_erasure_is_announced_once_and_earlier_events_lose_their_payload(
    customer_stub: CustomerServiceStub, customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine
):
    former = await former_customer(customer_stub)
    start = await feed_end(customer_engine)
    await customer_stub.EraseCustomer(erase(former.name), timeout=5)
    [event] = await follow_events(
        customer_channel, after=start, count=1, aggregate_id=former.name, event_types=[CUSTOMER_ERASED]
    )
    assert unpack(event, customer_events.CustomerErased()).customer == former.name  # type: ignore[attr-defined]
    assert await committed_events(customer_engine, former.name, [CUSTOMER_ERASED]) == [CUSTOMER_ERASED]
    async with customer_engine.connect() as connection:
        kept = await connection.execute(
            text("SELECT count(*) FROM outbox WHERE aggregateid = :name AND type <> :erased AND payload <> ''"),
            {"name": former.name, "erased": CUSTOMER_ERASED},
        )
        assert kept.scalar_one() == 0


async def test_erasing_again_changes_and_announces_nothing(
    customer_stub: CustomerServiceStub, customer_engine: AsyncEngine
):
    former = await former_customer(customer_stub)
    first = erase(former.name)
    erased = await customer_stub.EraseCustomer(first, timeout=5)
    assert await customer_stub.EraseCustomer(first, timeout=5) == erased
    assert await customer_stub.EraseCustomer(erase(former.name), timeout=5) == erased
    assert await committed_events(customer_engine, former.name, [CUSTOMER_ERASED]) == [CUSTOMER_ERASED]


async def test_a_customer_with_a_line_in_service_cannot_be_erased(customer_stub: CustomerServiceStub):
    customer = await customer_stub.CreateCustomer(create_request(customer_with_name("Sardor", "Rahimov")), timeout=5)
    await customer_stub.CreateSubscription(
        CreateLine(parent=customer.name, subscription=line(), request_id=request_id()), timeout=5
    )
    code, error = await failure(customer_stub.EraseCustomer(erase(customer.name), timeout=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "CUSTOMER_HAS_LINES"
    kept = await customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=customer.name), timeout=5)
    assert kept == customer


async def test_erasing_an_unknown_customer_is_not_found(customer_stub: CustomerServiceStub):
    name = "customers/0b7f0d5e-2222-4000-8000-000000000000"
    code, error = await failure(customer_stub.EraseCustomer(erase(name), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND and error.reason == "CUSTOMER_NOT_FOUND"


async def test_an_erased_customer_cannot_be_changed(customer_stub: CustomerServiceStub):
    former = await former_customer(customer_stub)
    await customer_stub.EraseCustomer(erase(former.name), timeout=5)
    rename = customer_service_pb2.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=former.name, individual=customer_pb2.Individual(family_name=former.marker)),
        update_mask=field_mask_pb2.FieldMask(paths=["individual.family_name"]),
    )
    add_line = CreateLine(parent=former.name, subscription=line(), request_id=request_id())
    for call in (
        customer_stub.UpdateCustomer(rename, timeout=5),
        customer_stub.CreateSubscription(add_line, timeout=5),
    ):
        code, error = await failure(call)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "CUSTOMER_ERASED"


async def test_retrying_the_sign_up_of_an_erased_customer_does_not_bring_the_data_back(
    customer_stub: CustomerServiceStub,
):
    former = await former_customer(customer_stub)
    await customer_stub.EraseCustomer(erase(former.name), timeout=5)
    code, error = await failure(customer_stub.CreateCustomer(former.create, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and error.reason == "REQUEST_ID_REUSED"
    found = await customer_stub.SearchCustomers(
        customer_service_pb2.SearchCustomersRequest(name_query=former.marker), timeout=5
    )
    assert list(found.customers) == []


async def test_a_deleted_customer_can_still_be_erased(customer_stub: CustomerServiceStub, customer_engine: AsyncEngine):
    marker = f"Ochilova{secrets.token_hex(4)}"
    customer = await customer_stub.CreateCustomer(create_request(customer_with_name("Nigora", marker)), timeout=5)
    await customer_stub.DeleteCustomer(customer_service_pb2.DeleteCustomerRequest(name=customer.name), timeout=5)
    erased = await customer_stub.EraseCustomer(erase(customer.name), timeout=5)
    assert erased.individual.family_name == "erased"
    async with customer_engine.connect() as connection:
        left = await connection.execute(
            text("SELECT count(*) FROM customers AS c WHERE c::text LIKE '%' || :marker || '%'"), {"marker": marker}
        )
        assert left.scalar_one() == 0


async def test_migration_links_answers_stored_before_it_to_their_customers(postgres: PostgresCluster, worker_id: str):
    name = f"customer_erasure_migration_{worker_id}"
    postgres.drop_database(name)
    url = postgres.ensure_database(name)
    await asyncio.to_thread(migrate, url, CUSTOMER.migrations, "0004")
    customer_name = "customers/4f1c2d3e-3333-4000-8000-000000000000"
    answers = {
        "sign-up": ("CreateCustomer", customer_pb2.Customer(name=customer_name).SerializeToString()),
        "line": (
            "CreateSubscription",
            customer_pb2.Subscription(name=f"{customer_name}/subscriptions/x").SerializeToString(),
        ),
        "other": ("RecordInvoice", b"\x0a\x03abc"),
    }
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as connection:
            for rid, (method, response) in answers.items():
                await connection.execute(
                    text(
                        "INSERT INTO idempotency_keys (caller, request_id, method, fingerprint, response) "
                        "VALUES ('alice', :rid, :method, '\\x00', :response)"
                    ),
                    {"rid": rid, "method": method, "response": response},
                )
        await asyncio.to_thread(migrate, url, CUSTOMER.migrations)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT request_id, customer_id::text AS customer FROM idempotency_keys")
            )
            linked = {row.request_id: row.customer for row in rows}
    finally:
        await engine.dispose()
    customer_id = customer_name.removeprefix("customers/")
    assert linked == {"sign-up": customer_id, "line": customer_id, "other": None}


# Tables that hold data about customers: every one with a customer_id column, the customers themselves,
# and the outbox, whose events are about customers (aggregate ids `customers/{customer}`).
CUSTOMER_DATA_TABLES = """
SELECT table_name FROM information_schema.columns
WHERE table_schema = current_schema() AND column_name = 'customer_id'
UNION SELECT 'customers' UNION SELECT 'outbox'
"""


async def tables_without_eraser(connection: AsyncConnection) -> set[str]:
    """The tables holding customer data that no part's erasure declares."""
    declared = {table for part in CUSTOMER_DATA for table in part.tables}
    return set((await connection.execute(text(CUSTOMER_DATA_TABLES))).scalars()) - declared


async def test_every_table_holding_customer_data_belongs_to_a_part_that_erases_it(customer_engine: AsyncEngine):
    async with customer_engine.connect() as connection:
        assert await tables_without_eraser(connection) == set()


async def test_a_new_table_with_customer_data_and_no_eraser_is_found(customer_engine: AsyncEngine):
    async with customer_engine.connect() as connection:
        transaction = await connection.begin()
        try:
            await connection.execute(text("CREATE TABLE customer_notes (customer_id uuid, note text)"))
            assert await tables_without_eraser(connection) == {"customer_notes"}
        finally:
            await transaction.rollback()


async def test_every_table_an_eraser_declares_exists(customer_engine: AsyncEngine):
    declared = {table for part in CUSTOMER_DATA for table in part.tables}
    async with customer_engine.connect() as connection:
        tables = await connection.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        )
        assert declared <= set(tables.scalars())


def customer_with_name(given: str, family: str) -> customer_pb2.Customer:
    return customer_pb2.Customer(
        individual=customer_pb2.Individual(given_name=given, family_name=family),
        contact_media=[customer_pb2.ContactMedium(phone_number=unique_mobile("UZ"))],
    )
