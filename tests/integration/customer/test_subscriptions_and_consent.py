"""Lines and consent history of a customer against a real PostgreSQL."""

import asyncio

import grpc
from google.protobuf import field_mask_pb2
from google.type import date_pb2

from crm.common.v1 import common_pb2
from crm.customer.v1 import customer_pb2, customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.support import create_request, failure, international_format, line, person, request_id, unique_mobile

CreateLine = customer_service_pb2.CreateSubscriptionRequest
ALICE = (("x-crm-caller-subject", "alice"), ("x-crm-caller-kind", "employee"))
BOB = (("x-crm-caller-subject", "bob"), ("x-crm-caller-kind", "employee"))


async def new_customer(stub: CustomerServiceStub) -> str:
    return (await stub.CreateCustomer(create_request(person()), timeout=5)).name


async def test_line_is_created_with_normalised_msisdn_and_listed(customer_stub: CustomerServiceStub):
    parent = await new_customer(customer_stub)
    msisdn = unique_mobile("UZ")
    created = await customer_stub.CreateSubscription(
        CreateLine(parent=parent, subscription=line(international_format(msisdn)), request_id=request_id()), timeout=5
    )
    assert created.name.startswith(parent + "/subscriptions/")
    assert created.msisdn == msisdn
    assert created.status == customer_pb2.SUBSCRIPTION_STATUS_ACTIVE
    listed = await customer_stub.ListSubscriptions(
        customer_service_pb2.ListSubscriptionsRequest(parent=parent), timeout=5
    )
    assert [s.name for s in listed.subscriptions] == [created.name]
    fetched = await customer_stub.GetSubscription(
        customer_service_pb2.GetSubscriptionRequest(name=created.name), timeout=5
    )
    assert fetched == created


async def test_a_number_in_service_cannot_get_a_second_line_even_in_a_race(customer_stub: CustomerServiceStub):
    parents = [await new_customer(customer_stub) for _ in range(6)]
    msisdn = unique_mobile("UZ")
    results = await asyncio.gather(
        *(
            customer_stub.CreateSubscription(
                CreateLine(parent=parent, subscription=line(msisdn), request_id=request_id()), timeout=10
            )
            for parent in parents
        ),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, customer_pb2.Subscription)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(created) == 1
    assert len(refused) == 5 and {e.code() for e in refused} == {grpc.StatusCode.ALREADY_EXISTS}


async def test_a_terminated_number_can_be_reissued(customer_stub: CustomerServiceStub):
    msisdn = unique_mobile("UZ")
    first = await customer_stub.CreateSubscription(
        CreateLine(parent=await new_customer(customer_stub), subscription=line(msisdn), request_id=request_id()),
        timeout=5,
    )
    await customer_stub.UpdateSubscription(
        customer_service_pb2.UpdateSubscriptionRequest(
            subscription=customer_pb2.Subscription(name=first.name, status=customer_pb2.SUBSCRIPTION_STATUS_TERMINATED),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        ),
        timeout=5,
    )
    second = await customer_stub.CreateSubscription(
        CreateLine(parent=await new_customer(customer_stub), subscription=line(msisdn), request_id=request_id()),
        timeout=5,
    )
    assert second.msisdn == msisdn


async def test_tariff_change_keeps_other_fields_and_a_terminated_line_cannot_change(
    customer_stub: CustomerServiceStub,
):
    created = await customer_stub.CreateSubscription(
        CreateLine(parent=await new_customer(customer_stub), subscription=line(), request_id=request_id()), timeout=5
    )
    changed = await customer_stub.UpdateSubscription(
        customer_service_pb2.UpdateSubscriptionRequest(
            subscription=customer_pb2.Subscription(name=created.name, tariff_plan_id="plans/uz-max-30gb"),
            update_mask=field_mask_pb2.FieldMask(paths=["tariff_plan_id"]),
        ),
        timeout=5,
    )
    assert changed.tariff_plan_id == "plans/uz-max-30gb"
    assert changed.msisdn == created.msisdn and changed.purpose == created.purpose
    terminate = customer_service_pb2.UpdateSubscriptionRequest(
        subscription=customer_pb2.Subscription(name=created.name, status=customer_pb2.SUBSCRIPTION_STATUS_TERMINATED),
        update_mask=field_mask_pb2.FieldMask(paths=["status"]),
    )
    await customer_stub.UpdateSubscription(terminate, timeout=5)
    code, error = await failure(customer_stub.UpdateSubscription(terminate, timeout=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "SUBSCRIPTION_TERMINATED"


def change_plan(name: str, plan: str, rid: str = "", etag: str = "") -> customer_service_pb2.UpdateSubscriptionRequest:
    return customer_service_pb2.UpdateSubscriptionRequest(
        subscription=customer_pb2.Subscription(name=name, tariff_plan_id=plan, etag=etag),
        update_mask=field_mask_pb2.FieldMask(paths=["tariff_plan_id"]),
        request_id=rid,
    )


async def new_line(stub: CustomerServiceStub) -> customer_pb2.Subscription:
    return await stub.CreateSubscription(
        CreateLine(parent=await new_customer(stub), subscription=line(), request_id=request_id()), timeout=5
    )


async def read_line(stub: CustomerServiceStub, name: str) -> customer_pb2.Subscription:
    return await stub.GetSubscription(customer_service_pb2.GetSubscriptionRequest(name=name), timeout=5)


async def test_an_update_retried_with_its_request_id_returns_the_first_answer_and_updates_once(
    customer_stub: CustomerServiceStub,
):
    created = await new_line(customer_stub)
    request = change_plan(created.name, "plans/uz-max-30gb", request_id(), etag=created.etag)
    answers = await asyncio.gather(*(customer_stub.UpdateSubscription(request, timeout=10) for _ in range(6)))
    again = await customer_stub.UpdateSubscription(request, timeout=5)
    assert all(answer == again for answer in answers)
    assert (again.tariff_plan_id, again.etag) == ("plans/uz-max-30gb", 'W/"2"')
    assert await read_line(customer_stub, created.name) == again


async def test_an_update_retried_after_the_line_changed_returns_the_first_answer_and_changes_nothing(
    customer_stub: CustomerServiceStub,
):
    created = await new_line(customer_stub)
    request = change_plan(created.name, "plans/uz-max-30gb", request_id(), etag=created.etag)
    first = await customer_stub.UpdateSubscription(request, timeout=5)
    moved_back = await customer_stub.UpdateSubscription(change_plan(created.name, created.tariff_plan_id), timeout=5)

    again = await customer_stub.UpdateSubscription(request, timeout=5)

    assert again == first and first.etag == 'W/"2"'
    current = await read_line(customer_stub, created.name)
    assert current == moved_back
    assert (current.tariff_plan_id, current.etag) == (created.tariff_plan_id, 'W/"3"')


async def test_an_update_request_id_reused_for_another_change_is_invalid_argument_and_changes_nothing(
    customer_stub: CustomerServiceStub,
):
    created = await new_line(customer_stub)
    rid = request_id()
    first = await customer_stub.UpdateSubscription(change_plan(created.name, "plans/uz-max-30gb", rid), timeout=5)
    code, error = await failure(
        customer_stub.UpdateSubscription(change_plan(created.name, "plans/uz-unlimited", rid), timeout=5)
    )
    assert (code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert await read_line(customer_stub, created.name) == first


async def test_an_update_request_id_is_scoped_to_the_caller(customer_stub: CustomerServiceStub):
    created = await new_line(customer_stub)
    rid = request_id()
    by_alice = await customer_stub.UpdateSubscription(
        change_plan(created.name, "plans/uz-max-30gb", rid), metadata=ALICE, timeout=5
    )
    by_bob = await customer_stub.UpdateSubscription(
        change_plan(created.name, "plans/uz-unlimited", rid), metadata=BOB, timeout=5
    )
    assert (by_alice.etag, by_bob.etag) == ('W/"2"', 'W/"3"')
    assert (await read_line(customer_stub, created.name)).tariff_plan_id == "plans/uz-unlimited"


async def test_an_update_without_a_request_id_updates_on_every_call(customer_stub: CustomerServiceStub):
    created = await new_line(customer_stub)
    request = change_plan(created.name, "plans/uz-max-30gb")
    await customer_stub.UpdateSubscription(request, timeout=5)
    second = await customer_stub.UpdateSubscription(request, timeout=5)
    assert (second.tariff_plan_id, second.etag) == ("plans/uz-max-30gb", 'W/"3"')


async def test_bad_line_is_invalid_argument_and_nothing_is_written(customer_stub: CustomerServiceStub):
    parent = await new_customer(customer_stub)
    bad = line("not a number")
    bad.activation_date.CopyFrom(date_pb2.Date(year=2999, month=1, day=1))
    bad.purpose = customer_pb2.SUBSCRIPTION_PURPOSE_UNSPECIFIED
    code, error = await failure(
        customer_stub.CreateSubscription(CreateLine(parent=parent, subscription=bad, request_id=request_id()))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.violations} == {  # type: ignore[attr-defined]
        "subscription.msisdn",
        "subscription.activation_date",
        "subscription.purpose",
    }
    listed = await customer_stub.ListSubscriptions(
        customer_service_pb2.ListSubscriptionsRequest(parent=parent), timeout=5
    )
    assert list(listed.subscriptions) == []


async def test_a_line_for_an_unknown_customer_is_not_found(customer_stub: CustomerServiceStub):
    code, error = await failure(
        customer_stub.CreateSubscription(
            CreateLine(
                parent="customers/00000000-0000-4000-8000-000000000001", subscription=line(), request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND and error.reason == "CUSTOMER_NOT_FOUND"


def decide(parent: str, purpose: int, decision: int) -> customer_service_pb2.RecordConsentRequest:
    return customer_service_pb2.RecordConsentRequest(
        parent=parent, purpose=purpose, decision=decision, channel=common_pb2.CHANNEL_APP, request_id=request_id()
    )


async def test_consent_state_follows_the_latest_decision_and_history_is_kept(customer_stub: CustomerServiceStub):
    parent = await new_customer(customer_stub)
    marketing, profiling = customer_pb2.CONSENT_PURPOSE_MARKETING, customer_pb2.CONSENT_PURPOSE_PROFILING
    await customer_stub.RecordConsent(decide(parent, marketing, customer_pb2.CONSENT_DECISION_GRANTED), timeout=5)
    await customer_stub.RecordConsent(decide(parent, profiling, customer_pb2.CONSENT_DECISION_DENIED), timeout=5)
    await customer_stub.RecordConsent(decide(parent, marketing, customer_pb2.CONSENT_DECISION_REVOKED), timeout=5)
    state = await customer_stub.GetConsentState(
        customer_service_pb2.GetConsentStateRequest(name=f"{parent}/consentState"), timeout=5
    )
    by_purpose = {p.purpose: p for p in state.purposes}
    assert by_purpose[marketing].decision == customer_pb2.CONSENT_DECISION_REVOKED
    assert not by_purpose[marketing].permitted
    assert by_purpose[profiling].decision == customer_pb2.CONSENT_DECISION_DENIED
    partner = by_purpose[customer_pb2.CONSENT_PURPOSE_PARTNER_SHARING]
    assert partner.decision == customer_pb2.CONSENT_DECISION_UNSPECIFIED and not partner.permitted
    history = await customer_stub.ListConsentRecords(
        customer_service_pb2.ListConsentRecordsRequest(parent=parent, page_size=2), timeout=5
    )
    assert [r.decision for r in history.consent_records] == [
        customer_pb2.CONSENT_DECISION_REVOKED,
        customer_pb2.CONSENT_DECISION_DENIED,
    ]
    rest = await customer_stub.ListConsentRecords(
        customer_service_pb2.ListConsentRecordsRequest(parent=parent, page_size=2, page_token=history.next_page_token),
        timeout=5,
    )
    assert [r.decision for r in rest.consent_records] == [customer_pb2.CONSENT_DECISION_GRANTED]
    assert rest.next_page_token == ""


async def test_revoking_a_consent_never_granted_is_failed_precondition(customer_stub: CustomerServiceStub):
    parent = await new_customer(customer_stub)
    code, error = await failure(
        customer_stub.RecordConsent(
            decide(parent, customer_pb2.CONSENT_PURPOSE_MARKETING, customer_pb2.CONSENT_DECISION_REVOKED), timeout=5
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and error.reason == "CONSENT_NOT_GRANTED"
    history = await customer_stub.ListConsentRecords(
        customer_service_pb2.ListConsentRecordsRequest(parent=parent), timeout=5
    )
    assert list(history.consent_records) == []


async def test_repeated_consent_request_records_one_decision(customer_stub: CustomerServiceStub):
    parent = await new_customer(customer_stub)
    request = decide(parent, customer_pb2.CONSENT_PURPOSE_PARTNER_SHARING, customer_pb2.CONSENT_DECISION_GRANTED)
    answers = await asyncio.gather(*(customer_stub.RecordConsent(request, timeout=10) for _ in range(5)))
    assert len({a.name for a in answers}) == 1
    history = await customer_stub.ListConsentRecords(
        customer_service_pb2.ListConsentRecordsRequest(parent=parent), timeout=5
    )
    assert len(history.consent_records) == 1


async def test_a_line_number_without_country_code_is_read_in_the_customers_country(
    customer_stub: CustomerServiceStub,
):
    customer = await customer_stub.CreateCustomer(
        create_request(person("Ірина", "Коваленко", country="UA", region="Одеська область")), timeout=5
    )
    msisdn = unique_mobile("UA")
    created = await customer_stub.CreateSubscription(
        CreateLine(parent=customer.name, subscription=line("0" + msisdn.removeprefix("+380")), request_id=request_id()),
        timeout=5,
    )
    assert created.msisdn == msisdn
