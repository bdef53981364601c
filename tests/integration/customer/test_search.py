"""Customer search against a real PostgreSQL: phone formats, names without case or diacritics,
filters, pagination, and index-only plans at scale."""

import re
import uuid

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.pagination import PageRequest
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.customer.customers import store
from services.customer.customers.lifecycle import CustomerStatus
from services.customer.customers.search import SearchCriteria
from tests.support import (
    create_request,
    failure,
    international_format,
    line,
    national_format,
    person,
    request_id,
    unique_mobile,
)

Search = customer_service_pb2.SearchCustomersRequest


def retailer() -> str:
    """A retailer id no other test uses, to keep each test's customers apart."""
    return f"retailers/test-{uuid.uuid4().hex[:12]}"


async def names_found(stub: CustomerServiceStub, request: customer_service_pb2.SearchCustomersRequest) -> set[str]:
    response = await stub.SearchCustomers(request, timeout=5)
    return {c.name for c in response.customers}


@pytest.mark.parametrize("written", [international_format, national_format, lambda e164: e164])
async def test_phone_search_finds_the_customer_in_any_common_format(customer_stub: CustomerServiceStub, written):
    phone = unique_mobile("UA")
    created = await customer_stub.CreateCustomer(
        create_request(person("Тарас", "Бойко", phone=phone, country="UA", region="Львівська область")), timeout=5
    )
    found = await names_found(customer_stub, Search(phone_number=written(phone), phone_region_code="UA"))
    assert found == {created.name}


async def test_phone_search_finds_the_owner_of_a_line(customer_stub: CustomerServiceStub):
    created = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    msisdn = unique_mobile("UZ")
    await customer_stub.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(
            parent=created.name, subscription=line(msisdn), request_id=request_id()
        ),
        timeout=5,
    )
    assert await names_found(customer_stub, Search(phone_number=international_format(msisdn))) == {created.name}


@pytest.mark.parametrize(
    ("given", "family", "query"),
    [
        ("Văn An", "Nguyễn", "nguyen"),
        ("Олександр", "Петренко", "олександр"),
        ("Gʻulom", "Qodirov", "gulom"),
        ("Gʻulom", "Qodirov", "G'ULOM"),
        ("Thị Hồng", "Đặng", "dang thi"),
    ],
)
async def test_name_search_ignores_case_and_diacritics(
    customer_stub: CustomerServiceStub, given: str, family: str, query: str
):
    shop = retailer()
    created = await customer_stub.CreateCustomer(create_request(person(given, family, retailer_id=shop)), timeout=5)
    await customer_stub.CreateCustomer(create_request(person("Someone", "Else", retailer_id=shop)), timeout=5)
    assert await names_found(customer_stub, Search(name_query=query, retailer_id=shop)) == {created.name}


async def test_filters_combine_and_status_region_and_retailer_each_narrow(customer_stub: CustomerServiceStub):
    shop = retailer()
    tashkent = await customer_stub.CreateCustomer(create_request(person(retailer_id=shop)), timeout=5)
    samarkand = await customer_stub.CreateCustomer(
        create_request(person(retailer_id=shop, region="Samarqand viloyati")), timeout=5
    )
    await customer_stub.ChangeCustomerStatus(
        customer_service_pb2.ChangeCustomerStatusRequest(
            name=samarkand.name, status=customer_pb2.CUSTOMER_STATUS_ACTIVE, request_id=request_id()
        ),
        timeout=5,
    )
    assert await names_found(customer_stub, Search(retailer_id=shop)) == {tashkent.name, samarkand.name}
    assert await names_found(customer_stub, Search(retailer_id=shop, region="SAMARQAND VILOYATI")) == {samarkand.name}
    active = Search(retailer_id=shop, status=customer_pb2.CUSTOMER_STATUS_ACTIVE)
    assert await names_found(customer_stub, active) == {samarkand.name}


async def test_search_pages_do_not_repeat_and_a_token_with_other_criteria_is_rejected(
    customer_stub: CustomerServiceStub,
):
    shop = retailer()
    created = {
        (await customer_stub.CreateCustomer(create_request(person(retailer_id=shop)), timeout=5)).name for _ in range(5)
    }
    first = await customer_stub.SearchCustomers(Search(retailer_id=shop, page_size=2), timeout=5)
    second = await customer_stub.SearchCustomers(
        Search(retailer_id=shop, page_size=2, page_token=first.next_page_token), timeout=5
    )
    third = await customer_stub.SearchCustomers(
        Search(retailer_id=shop, page_size=2, page_token=second.next_page_token), timeout=5
    )
    pages = [c.name for page in (first, second, third) for c in page.customers]
    assert len(pages) == 5 and set(pages) == created and third.next_page_token == ""
    code, error = await failure(
        customer_stub.SearchCustomers(Search(retailer_id=retailer(), page_token=first.next_page_token), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["page_token"]  # type: ignore[attr-defined]


async def test_search_without_criteria_or_with_a_bad_phone_is_invalid_argument(customer_stub: CustomerServiceStub):
    code, _ = await failure(customer_stub.SearchCustomers(Search(), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, error = await failure(customer_stub.SearchCustomers(Search(phone_number="12-34"), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["phone_number"]  # type: ignore[attr-defined]


PLANNED_SEARCHES = {
    "phone": SearchCriteria(phone_number="+998901112233"),
    "name": SearchCriteria(name_key="nguyen van"),
    "status": SearchCriteria(status=CustomerStatus.SUSPENDED),
    "region": SearchCriteria(region_key="fergana"),
    "retailer": SearchCriteria(retailer_id="retailers/planned-1"),
    "name and status": SearchCriteria(name_key="olek", status=CustomerStatus.ACTIVE),
}


@pytest.mark.parametrize("criterion", list(PLANNED_SEARCHES))
async def test_search_plans_use_indexes_not_sequential_scans_at_scale(
    criterion: str, large_customer_table: AsyncEngine
):
    statement = store.search_statement(PLANNED_SEARCHES[criterion], PageRequest(size=50, after=None))
    sql = str(statement.compile(dialect=asyncpg.dialect(), compile_kwargs={"literal_binds": True}))
    async with large_customer_table.connect() as connection:
        rows = await connection.execute(text(f"EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) {sql}"))
        plan = "\n".join(row[0] for row in rows)
    assert "Seq Scan" not in plan, plan
    # An index walked end to end with a filter is a scan in disguise: nothing may discard many rows.
    discarded = [int(float(n)) for n in re.findall(r"Rows Removed by Filter: ([\d.]+)", plan)]
    assert all(n < 1000 for n in discarded), plan
