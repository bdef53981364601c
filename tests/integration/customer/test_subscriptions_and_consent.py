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
