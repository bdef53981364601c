"""Through the gateway, with the customer service and the gateway running as separate processes."""

import asyncio
import json
import secrets

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from crm.customer.v1 import customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.e2e.conftest import CUSTOMER_SERVICE, LOYALTY_SERVICE, RunningSystem
from tests.gateway_support import employee_channel
from tests.support import create_request, failure, international_format, person, unique_mobile
from tools.credentials import LocalCredentials


async def test_customer_created_through_gateway_is_found_by_phone_and_name(gateway_stub: CustomerServiceStub):
    phone = unique_mobile("VN")
    created = await gateway_stub.CreateCustomer(
        create_request(person("Thị Mai", "Nguyễn", phone=phone, country="VN", region="Hà Nội")), timeout=5
    )
    by_phone = await gateway_stub.SearchCustomers(
        customer_service_pb2.SearchCustomersRequest(phone_number=international_format(phone)), timeout=5
    )
    assert [c.name for c in by_phone.customers] == [created.name]
    by_name = await gateway_stub.SearchCustomers(
        customer_service_pb2.SearchCustomersRequest(name_query="nguyen thi mai", region="ha noi"), timeout=5
    )
    assert created.name in {c.name for c in by_name.customers}
    assert created.creator == "alice"


async def test_caller_identity_sent_by_a_client_is_ignored(gateway_stub: CustomerServiceStub):
    # Alice's token proves who calls; what the client claims besides (the gateway's own caller keys,
    # the development scheme's user, which is off here) never reaches the service.
    forged = (("x-crm-user", "mallory"), ("x-crm-caller-subject", "mallory"), ("x-crm-caller-kind", "service"))
    created = await gateway_stub.CreateCustomer(create_request(person()), metadata=forged, timeout=5)
    assert created.creator == "alice"


async def test_backend_not_found_keeps_its_code_reason_and_domain(gateway_stub: CustomerServiceStub):
    name = "customers/6b0d5a3e-1111-4000-8000-000000000000"
    code, error = await failure(gateway_stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=name), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "CUSTOMER_NOT_FOUND"
    assert error.metadata["resource_name"] == name


async def test_bad_input_keeps_field_violations_and_writes_nothing(gateway_stub: CustomerServiceStub):
    phone = unique_mobile("RU")
    bad = person(given="", phone=phone, country="RU", region="Москва")
    bad.contact_media.add(email_address="@nowhere")
    code, error = await failure(gateway_stub.CreateCustomer(create_request(bad), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in error.violations} == {  # type: ignore[attr-defined]
        "customer.individual.given_name",
        "customer.contact_media[2].email_address",
    }
    found = await gateway_stub.SearchCustomers(
        customer_service_pb2.SearchCustomersRequest(phone_number=phone), timeout=5
    )
    assert list(found.customers) == []


async def test_an_expired_deadline_ends_the_call_with_deadline_exceeded(gateway_stub: CustomerServiceStub):
    code, _ = await failure(
        gateway_stub.ListCustomers(customer_service_pb2.ListCustomersRequest(page_size=500), timeout=0.001)
    )
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_gateway_health_reports_each_exposed_service(gateway_channel: grpc.aio.Channel):
    health = health_pb2_grpc.HealthStub(gateway_channel)
    for service in ("", CUSTOMER_SERVICE):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    code, _ = await failure(health.Check(health_pb2.HealthCheckRequest(service="crm.nothing.v1.Nope"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_gateway_serves_while_the_loyalty_backend_is_absent_and_says_so(gateway_channel: grpc.aio.Channel):
    health = health_pb2_grpc.HealthStub(gateway_channel)
    loyalty = await health.Check(health_pb2.HealthCheckRequest(service=LOYALTY_SERVICE), timeout=5)
    overall = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert loyalty.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    stub = LoyaltyServiceStub(gateway_channel)
    code, _ = await failure(stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name="accounts/x"), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_gateway_reflection_describes_the_customer_service(gateway_channel: grpc.aio.Channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(gateway_channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=CUSTOMER_SERVICE),
    ]
    answers = [answer async for answer in reflection.ServerReflectionInfo(iter(requests), timeout=5)]
    assert CUSTOMER_SERVICE in {s.name for s in answers[0].list_services_response.service}
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(f)
        for f in answers[1].file_descriptor_response.file_descriptor_proto
    ]
    methods = {m.name for f in files for s in f.service if s.name == "CustomerService" for m in s.method}
    assert {"GetCustomer", "SearchCustomers", "CreateSubscription", "RecordConsent"} <= methods


async def test_one_call_through_the_gateway_is_one_trace_across_both_processes(
    gateway_stub: CustomerServiceStub, running_system: RunningSystem
):
    created = await gateway_stub.CreateCustomer(create_request(person()), timeout=5)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    await gateway_stub.GetCustomer(
        customer_service_pb2.GetCustomerRequest(name=created.name), metadata=(("traceparent", traceparent),), timeout=5
    )
    spans = await running_system.telemetry.wait_for_spans(trace_id, {"gateway", "customer-service"})
    method = f"/{CUSTOMER_SERVICE}/GetCustomer"

    def one(service: str, kind: int) -> object:
        matching = [s for s in spans if s.service == service and s.kind == kind and s.name == method]
        assert len(matching) == 1, spans
        return matching[0]

    gateway_server = one("gateway", trace_pb2.Span.SPAN_KIND_SERVER)
    gateway_client = one("gateway", trace_pb2.Span.SPAN_KIND_CLIENT)
    customer_server = one("customer-service", trace_pb2.Span.SPAN_KIND_SERVER)
    assert gateway_client.parent_span_id == gateway_server.span_id  # type: ignore[attr-defined]
    assert customer_server.parent_span_id == gateway_client.span_id  # type: ignore[attr-defined]
    queries = [s for s in spans if s.service == "customer-service" and s.attributes.get("db.system") == "postgresql"]
    assert queries, spans
    assert {s.parent_span_id for s in queries} <= {s.span_id for s in spans}


async def test_rpc_duration_metrics_are_exported_by_both_processes(
    gateway_stub: CustomerServiceStub, running_system: RunningSystem
):
    await gateway_stub.ListCustomers(customer_service_pb2.ListCustomersRequest(page_size=1), timeout=5)
    async with asyncio.timeout(10):
        while not {("gateway", "rpc.server.duration"), ("customer-service", "rpc.server.duration")} <= (
            running_system.telemetry.received.metric_names
        ):
            await asyncio.sleep(0.1)


async def test_logs_are_json_lines_carrying_the_trace_id(
    running_system: RunningSystem, local_credentials: LocalCredentials
):
    trace_id = secrets.token_hex(16)
    async with employee_channel(running_system.gateway, local_credentials, ("supervisor",), subject="carol") as carol:
        await CustomerServiceStub(carol).ListCustomers(
            customer_service_pb2.ListCustomersRequest(page_size=1),
            metadata=(("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),),
            timeout=5,
        )
    for process, service in ((running_system.customer, "customer-service"), (running_system.gateway, "gateway")):
        async with asyncio.timeout(5):
            while trace_id not in process.log():
                await asyncio.sleep(0.05)
        lines = [json.loads(line) for line in process.log().splitlines() if trace_id in line]
        access = [entry for entry in lines if entry.get("rpc_method", "").endswith("/ListCustomers")]
        assert access and all(entry["caller"] == "carol" for entry in access)
        assert all(entry["trace_id"] == trace_id and entry["service"] == service for entry in lines)


async def test_internal_methods_are_not_exposed_and_public_reads_are(gateway_channel: grpc.aio.Channel):
    from crm.customer.v1 import billing_pb2, billing_pb2_grpc

    billing = billing_pb2_grpc.BillingServiceStub(gateway_channel)
    code, _ = await failure(
        billing.RecordInvoice(billing_pb2.RecordInvoiceRequest(parent="customers/x", request_id="r"), timeout=5)
    )
    assert code == grpc.StatusCode.UNIMPLEMENTED
    code, error = await failure(
        billing.GetBillingSummary(
            billing_pb2.GetBillingSummaryRequest(name="customers/00000000-0000-4000-8000-0000000000aa/billingSummary"),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND and error.reason == "CUSTOMER_NOT_FOUND"


async def test_segments_and_usage_profiles_are_readable_through_the_gateway(
    gateway_stub: CustomerServiceStub, gateway_channel: grpc.aio.Channel
):
    from crm.customer.v1 import segments_pb2, segments_pb2_grpc, usage_pb2, usage_pb2_grpc
    from tests.support import line, request_id

    created = await gateway_stub.CreateCustomer(create_request(person(region="Navoiy viloyati")), timeout=5)
    subscription = await gateway_stub.CreateSubscription(
        customer_service_pb2.CreateSubscriptionRequest(
            parent=created.name, subscription=line(), request_id=request_id()
        ),
        timeout=5,
    )
    segments = segments_pb2_grpc.SegmentServiceStub(gateway_channel)
    async with asyncio.timeout(15):
        while True:
            answer = await segments.GetCustomerSegments(
                segments_pb2.GetCustomerSegmentsRequest(name=f"{created.name}/segments"), timeout=5
            )
            names = {m.segment for m in answer.memberships}
            if {"segments/type-consumer", "segments/region-navoiy-viloyati"} <= names:
                break
            await asyncio.sleep(0.05)
    usage = usage_pb2_grpc.UsageServiceStub(gateway_channel)
    profile = await usage.GetUsageProfile(
        usage_pb2.GetUsageProfileRequest(name=f"{subscription.name}/usageProfile"), timeout=5
    )
    assert profile.name == f"{subscription.name}/usageProfile" and list(profile.months) == []

    async def one_batch():
        yield usage_pb2.IngestUsageRequest()

    code, _ = await failure(usage.IngestUsage(one_batch(), timeout=5))
    assert code == grpc.StatusCode.UNIMPLEMENTED
