"""The customer service against a real PostgreSQL: customers, etags, idempotency and bad input."""

import asyncio

import grpc
from google.protobuf import field_mask_pb2
from google.type import date_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.support import create_request, failure, person, request_id, unique_mobile

ALICE = (("x-crm-caller-subject", "alice"), ("x-crm-caller-kind", "employee"))
BOB = (("x-crm-caller-subject", "bob"), ("x-crm-caller-kind", "employee"))


async def count(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar_one())


async def test_created_customer_is_read_back_with_normalised_phone_and_actor(customer_stub: CustomerServiceStub):
    phone = unique_mobile("UZ")
    created = await customer_stub.CreateCustomer(
        create_request(person("Oʻktam", "Yoʻldoshev", phone=phone[:4] + " " + phone[4:6] + " " + phone[6:])),
        metadata=ALICE,
        timeout=5,
    )
    fetched = await customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=created.name), timeout=5)
    assert fetched == created
    assert fetched.contact_media[0].phone_number == phone
    assert fetched.individual.given_name == "Oʻktam"
    assert fetched.status == customer_pb2.CUSTOMER_STATUS_PROSPECT
    assert fetched.creator == "alice" and fetched.updater == "alice"
    assert fetched.create_time.seconds > 0 and fetched.etag


async def test_local_format_number_is_read_in_the_customers_country(customer_stub: CustomerServiceStub):
    phone = unique_mobile("UA")
    national = "0" + phone.removeprefix("+380")
    created = await customer_stub.CreateCustomer(
        create_request(person("Олександр", "Шевченко", phone=national, country="UA", region="Київська область")),
        timeout=5,
    )
    assert created.contact_media[0].phone_number == phone


async def test_same_request_id_returns_first_answer_and_creates_one_customer(
    customer_stub: CustomerServiceStub, customer_engine: AsyncEngine
):
    phone = unique_mobile()
    request = create_request(person(phone=phone))
    answers = await asyncio.gather(*(customer_stub.CreateCustomer(request, timeout=10) for _ in range(8)))
    again = await customer_stub.CreateCustomer(request, timeout=5)
    assert {a.name for a in answers} == {again.name}
    assert all(a == again for a in answers)
    assert await count(customer_engine, "SELECT count(*) FROM customers WHERE :p = ANY(phone_numbers)", p=phone) == 1


async def test_same_request_id_with_other_content_is_invalid_argument(
    customer_stub: CustomerServiceStub, customer_engine: AsyncEngine
):
    rid = request_id()
    await customer_stub.CreateCustomer(create_request(person(), rid), timeout=5)
    other_phone = unique_mobile()
    code, error = await failure(customer_stub.CreateCustomer(create_request(person(phone=other_phone), rid), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "REQUEST_ID_REUSED"
    assert (
        await count(customer_engine, "SELECT count(*) FROM customers WHERE :p = ANY(phone_numbers)", p=other_phone) == 0
    )


async def test_request_ids_are_scoped_to_the_caller(customer_stub: CustomerServiceStub):
    rid = request_id()
    for_alice = await customer_stub.CreateCustomer(create_request(person(), rid), metadata=ALICE, timeout=5)
    for_bob = await customer_stub.CreateCustomer(create_request(person(), rid), metadata=BOB, timeout=5)
    assert for_alice.name != for_bob.name


async def test_bad_input_names_every_field_and_writes_nothing(
    customer_stub: CustomerServiceStub, customer_engine: AsyncEngine
):
    before = await count(customer_engine, "SELECT count(*) FROM customers")
    bad = person(given="  ", phone="12")
    bad.individual.birth_date.CopyFrom(date_pb2.Date(year=2999, month=1, day=1))
    bad.contact_media.add(email_address="not-an-email")
    code, error = await failure(customer_stub.CreateCustomer(create_request(bad), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in error.violations}  # type: ignore[attr-defined]
    assert fields == {
        "customer.individual.given_name",
        "customer.individual.birth_date",
        "customer.contact_media[0].phone_number",
        "customer.contact_media[2].email_address",
    }
    assert await count(customer_engine, "SELECT count(*) FROM customers") == before
    assert await count(customer_engine, "SELECT count(*) FROM idempotency_keys WHERE response IS NULL") == 0


async def test_unknown_enum_value_is_invalid_argument(customer_stub: CustomerServiceStub, customer_engine: AsyncEngine):
    before = await count(customer_engine, "SELECT count(*) FROM customers")
    customer = person()
    customer.individual.gender = 42  # type: ignore[assignment]
    code, error = await failure(customer_stub.CreateCustomer(create_request(customer), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["customer.individual.gender"]  # type: ignore[attr-defined]
    assert await count(customer_engine, "SELECT count(*) FROM customers") == before


async def test_create_without_request_id_is_invalid_argument(customer_stub: CustomerServiceStub):
    code, error = await failure(
        customer_stub.CreateCustomer(customer_service_pb2.CreateCustomerRequest(customer=person()), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["request_id"]  # type: ignore[attr-defined]


async def test_get_unknown_customer_is_not_found_with_reason(customer_stub: CustomerServiceStub):
    name = "customers/2f1d1c3e-0000-4000-8000-000000000000"
    code, error = await failure(
        customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=name), timeout=5)
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "CUSTOMER_NOT_FOUND"
    assert error.metadata["resource_name"] == name


async def test_malformed_name_is_invalid_argument(customer_stub: CustomerServiceStub):
    code, error = await failure(
        customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name="subscribers/7"), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["name"]  # type: ignore[attr-defined]


async def test_update_changes_only_masked_fields_and_records_updater(customer_stub: CustomerServiceStub):
    created = await customer_stub.CreateCustomer(create_request(person("Dilnoza", "Rahimova")), timeout=5)
    patch = customer_pb2.Customer(
        name=created.name, individual=customer_pb2.Individual(family_name="Xolmatova", given_name="IGNORED")
    )
    updated = await customer_stub.UpdateCustomer(
        customer_service_pb2.UpdateCustomerRequest(
            customer=patch, update_mask=field_mask_pb2.FieldMask(paths=["individual.family_name"])
        ),
        metadata=BOB,
        timeout=5,
    )
    assert updated.individual.family_name == "Xolmatova"
    assert updated.individual.given_name == "Dilnoza"
    assert updated.individual.birth_date == created.individual.birth_date
    assert updated.updater == "bob" and updated.creator == created.creator
    assert updated.etag != created.etag


async def test_update_with_stale_etag_is_aborted_and_changes_nothing(customer_stub: CustomerServiceStub):
    created = await customer_stub.CreateCustomer(create_request(person("Bekzod", "Aliyev")), timeout=5)
    mask = field_mask_pb2.FieldMask(paths=["individual.given_name"])
    first = customer_pb2.Customer(
        name=created.name, etag=created.etag, individual=customer_pb2.Individual(given_name="Bek")
    )
    second = customer_pb2.Customer(
        name=created.name, etag=created.etag, individual=customer_pb2.Individual(given_name="Zod")
    )
    await customer_stub.UpdateCustomer(
        customer_service_pb2.UpdateCustomerRequest(customer=first, update_mask=mask), timeout=5
    )
    code, error = await failure(
        customer_stub.UpdateCustomer(customer_service_pb2.UpdateCustomerRequest(customer=second, update_mask=mask))
    )
    assert code == grpc.StatusCode.ABORTED and error.reason == "ETAG_MISMATCH"
    current = await customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=created.name), timeout=5)
    assert current.individual.given_name == "Bek"


async def test_concurrent_updates_of_different_fields_both_survive(customer_stub: CustomerServiceStub):
    created = await customer_stub.CreateCustomer(create_request(person("Aziza", "Tursunova")), timeout=5)

    def update(field: str, value: str) -> object:
        individual = customer_pb2.Individual(**{field: value})
        return customer_stub.UpdateCustomer(
            customer_service_pb2.UpdateCustomerRequest(
                customer=customer_pb2.Customer(name=created.name, individual=individual),
                update_mask=field_mask_pb2.FieldMask(paths=[f"individual.{field}"]),
            ),
            timeout=10,
        )

    await asyncio.gather(*(update("middle_name", f"M{i}") for i in range(5)), update("preferred_language", "ru"))
    current = await customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=created.name), timeout=5)
    assert current.individual.preferred_language == "ru"
    assert current.individual.middle_name.startswith("M")
    assert current.etag == 'W/"7"'


async def test_update_of_status_through_mask_is_invalid_argument(customer_stub: CustomerServiceStub):
    created = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    code, error = await failure(
        customer_stub.UpdateCustomer(
            customer_service_pb2.UpdateCustomerRequest(
                customer=customer_pb2.Customer(name=created.name, status=customer_pb2.CUSTOMER_STATUS_ACTIVE),
                update_mask=field_mask_pb2.FieldMask(paths=["status"]),
            ),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "ChangeCustomerStatus" in error.violations[0].description  # type: ignore[attr-defined]


async def test_churn_with_reason_then_win_back(customer_stub: CustomerServiceStub):
    created = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    name = created.name
    active = await customer_stub.ChangeCustomerStatus(
        customer_service_pb2.ChangeCustomerStatusRequest(
            name=name, status=customer_pb2.CUSTOMER_STATUS_ACTIVE, request_id=request_id()
        ),
        timeout=5,
    )
    churned = await customer_stub.ChangeCustomerStatus(
        customer_service_pb2.ChangeCustomerStatusRequest(
            name=name,
            status=customer_pb2.CUSTOMER_STATUS_CHURNED,
            churn_reason=customer_pb2.CHURN_REASON_PORTED_TO_COMPETITOR,
            churn_detail="Beeline",
            etag=active.etag,
            request_id=request_id(),
        ),
        timeout=5,
    )
    assert churned.status == customer_pb2.CUSTOMER_STATUS_CHURNED
    assert churned.churn_reason == customer_pb2.CHURN_REASON_PORTED_TO_COMPETITOR
    assert churned.churn_detail == "Beeline"
    back = await customer_stub.ChangeCustomerStatus(
        customer_service_pb2.ChangeCustomerStatusRequest(
            name=name, status=customer_pb2.CUSTOMER_STATUS_ACTIVE, request_id=request_id()
        ),
        timeout=5,
    )
    assert back.status == customer_pb2.CUSTOMER_STATUS_ACTIVE
    assert back.churn_reason == customer_pb2.CHURN_REASON_UNSPECIFIED


async def test_suspending_a_prospect_is_failed_precondition(customer_stub: CustomerServiceStub):
    created = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    code, error = await failure(
        customer_stub.ChangeCustomerStatus(
            customer_service_pb2.ChangeCustomerStatusRequest(
                name=created.name, status=customer_pb2.CUSTOMER_STATUS_SUSPENDED, request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "STATUS_TRANSITION_NOT_ALLOWED"
    current = await customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=created.name), timeout=5)
    assert current.status == customer_pb2.CUSTOMER_STATUS_PROSPECT


async def test_list_pages_through_every_customer_once(customer_stub: CustomerServiceStub):
    for _ in range(5):
        await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    seen: list[str] = []
    token = ""
    while True:
        page = await customer_stub.ListCustomers(
            customer_service_pb2.ListCustomersRequest(page_size=3, page_token=token), timeout=5
        )
        assert len(page.customers) <= 3
        seen.extend(c.name for c in page.customers)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) >= 5
    assert seen == sorted(seen)


async def test_oversized_page_is_invalid_argument(customer_stub: CustomerServiceStub):
    code, error = await failure(
        customer_stub.ListCustomers(customer_service_pb2.ListCustomersRequest(page_size=501), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["page_size"]  # type: ignore[attr-defined]


async def test_deleted_customer_is_gone_and_a_customer_with_lines_cannot_be_deleted(
    customer_stub: CustomerServiceStub,
):
    from tests.support import line

    plain = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    await customer_stub.DeleteCustomer(customer_service_pb2.DeleteCustomerRequest(name=plain.name), timeout=5)
    code, _ = await failure(customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=plain.name)))
    assert code == grpc.StatusCode.NOT_FOUND

    with_line = await customer_stub.CreateCustomer(create_request(person()), timeout=5)
    await customer_stub.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(
            parent=with_line.name, subscription=line(), request_id=request_id()
        ),
        timeout=5,
    )
    code, error = await failure(
        customer_stub.DeleteCustomer(customer_service_pb2.DeleteCustomerRequest(name=with_line.name), timeout=5)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "CUSTOMER_HAS_LINES"


async def test_a_customer_who_signed_up_by_email_or_social_media_keeps_that_channel(customer_stub: CustomerServiceStub):
    for channel in (common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SOCIAL):
        new = person(phone=unique_mobile("UZ"))
        new.acquisition_channel = channel
        created = await customer_stub.CreateCustomer(create_request(new), metadata=ALICE, timeout=5)
        fetched = await customer_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=created.name), timeout=5)
        assert fetched.acquisition_channel == channel
