"""The spans of calls served and made: the caller's trace continued, the method named, the code kept."""

import secrets

import grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from chassis.telemetry import client_span, end_call_span, server_span

METHOD = "/crm.loyalty.v1.LoyaltyService/EarnPoints"


def tracer_and_spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_served_call_continues_the_trace_its_caller_names():
    provider, exporter = tracer_and_spans()
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    metadata = (("traceparent", f"00-{trace_id}-{parent_id}-01"), ("x-bin", b"\x00"))
    with server_span(provider.get_tracer("test"), METHOD, metadata) as span:
        end_call_span(span, grpc.StatusCode.OK)
    [finished] = exporter.get_finished_spans()
    assert finished.name == METHOD
    assert finished.kind is SpanKind.SERVER
    assert format(finished.context.trace_id, "032x") == trace_id
    assert finished.parent is not None and format(finished.parent.span_id, "016x") == parent_id
    assert dict(finished.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "crm.loyalty.v1.LoyaltyService",
        "rpc.method": "EarnPoints",
        "rpc.grpc.status_code": 0,
    }
    assert finished.status.status_code is StatusCode.UNSET


def test_a_call_without_trace_context_starts_a_trace_of_its_own():
    provider, exporter = tracer_and_spans()
    with server_span(provider.get_tracer("test"), METHOD, None):
        pass
    [finished] = exporter.get_finished_spans()
    assert finished.parent is None
    assert finished.context.trace_id != 0


def test_a_failed_call_is_an_error_span_with_its_code():
    provider, exporter = tracer_and_spans()
    with server_span(provider.get_tracer("test"), METHOD, ()) as span:
        end_call_span(span, grpc.StatusCode.FAILED_PRECONDITION)
    [finished] = exporter.get_finished_spans()
    assert finished.attributes is not None
    assert finished.attributes["rpc.grpc.status_code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "FAILED_PRECONDITION"


def test_a_call_made_carries_its_client_span_as_the_next_hops_parent():
    provider, exporter = tracer_and_spans()
    tracer = provider.get_tracer("test")
    metadata: list[tuple[str, str | bytes]] = [("accept-language", "uz")]
    with server_span(tracer, METHOD, ()) as served, client_span(tracer, METHOD, metadata) as called:
        end_call_span(called, grpc.StatusCode.OK)
        end_call_span(served, grpc.StatusCode.OK)
    client, server = exporter.get_finished_spans()
    assert client.kind is SpanKind.CLIENT and server.kind is SpanKind.SERVER
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    carried = dict(metadata)
    assert carried["accept-language"] == "uz"
    trace_id, span_id = format(client.context.trace_id, "032x"), format(client.context.span_id, "016x")
    version, carried_trace, carried_parent, flags = str(carried["traceparent"]).split("-")
    assert (version, carried_trace, carried_parent) == ("00", trace_id, span_id)
    assert int(flags, 16) & 0x01  # sampled
