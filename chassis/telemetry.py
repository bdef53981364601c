"""OpenTelemetry set-up from the standard `OTEL_*` variables.

Spans and metrics are always produced (so context propagates and tests can collect them); they are
exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Every call served has a span
(`server_span`, opened by the chassis' own interceptor, which wraps every call anyway: the
instrumentation's server interceptor would wrap each call and its context a second time, a cost the
profiles of the hot paths showed); outgoing calls have theirs from the instrumentation's client
interceptors, or from `client_span` where a caller adds the trace context itself (the gateway's
forwarding, whose channels carry no interceptor); the SQLAlchemy instrumentation gives one per
transaction or statement when asked (`<PREFIX>_DATABASE_STATEMENT_SPANS`).
"""

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import grpc
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine

Metadata = Iterable[tuple[str, str | bytes]]
# The semantic conventions' names of a gRPC call's attributes.
_RPC_SYSTEM, _RPC_SERVICE, _RPC_METHOD, _RPC_GRPC_STATUS_CODE = (
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "rpc.grpc.status_code",
)

_configured = False


def configure_telemetry(service_name: str) -> None:
    """Installs the global tracer and meter providers once per process."""
    global _configured
    if _configured:
        return
    _configured = True
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
    tracer_provider = TracerProvider(resource=resource)
    readers = []
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


def shutdown_telemetry() -> None:
    """Flushes and stops exporters; spans still buffered are sent."""
    tracer_provider = trace.get_tracer_provider()
    if isinstance(tracer_provider, TracerProvider):
        tracer_provider.shutdown()
    meter_provider = metrics.get_meter_provider()
    if isinstance(meter_provider, MeterProvider):
        meter_provider.shutdown()


@contextmanager
def server_span(tracer: trace.Tracer, method: str, metadata: Metadata | None) -> Iterator[Span]:
    """The current span while `method` (`/package.Service/Method`) is served, continuing the trace
    the caller's metadata names (W3C trace context); `end_call_span` records how the call ended."""
    carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
    with tracer.start_as_current_span(
        method,
        context=extract(carrier) if carrier else None,
        kind=SpanKind.SERVER,
        attributes=_rpc_attributes(method),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


@contextmanager
def client_span(tracer: trace.Tracer, method: str, metadata: list[tuple[str, str | bytes]]) -> Iterator[Span]:
    """The current span while `method` is called, its trace context added to the call's `metadata`."""
    with tracer.start_as_current_span(
        method,
        kind=SpanKind.CLIENT,
        attributes=_rpc_attributes(method),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        carrier: dict[str, str] = {}
        inject(carrier)
        metadata.extend(carrier.items())
        yield span


def end_call_span(span: Span, code: grpc.StatusCode) -> None:
    """Records the call's status code on its span; any code but OK marks the span an error."""
    span.set_attribute(_RPC_GRPC_STATUS_CODE, code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, code.name))


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return {_RPC_SYSTEM: "grpc", _RPC_SERVICE: service, _RPC_METHOD: name}


def client_interceptors() -> Sequence[grpc.aio.ClientInterceptor]:
    """Interceptors that open a client span per outgoing call and propagate its context."""
    interceptors: Sequence[grpc.aio.ClientInterceptor] = aio_client_interceptors()  # type: ignore[no-untyped-call]  # unannotated upstream
    return interceptors


def instrument_engine(engine: AsyncEngine) -> None:
    """A span for every query the engine runs."""
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)
