"""OpenTelemetry set-up from the standard `OTEL_*` variables.

Spans and metrics are always produced (so context propagates and tests can collect them); they are
exported over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The gRPC interceptors and the
SQLAlchemy instrumentation give a span for every server call, client call and query.
"""

import os
from collections.abc import Sequence

import grpc
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
)
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

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


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """Interceptors that open a server span per call, continuing the caller's trace."""
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor()  # type: ignore[no-untyped-call]  # unannotated upstream
    return [interceptor]


def client_interceptors() -> Sequence[grpc.aio.ClientInterceptor]:
    """Interceptors that open a client span per outgoing call and propagate its context."""
    interceptors: Sequence[grpc.aio.ClientInterceptor] = aio_client_interceptors()  # type: ignore[no-untyped-call]  # unannotated upstream
    return interceptors


def instrument_engine(engine: AsyncEngine) -> None:
    """A span for every query the engine runs."""
    SQLAlchemyInstrumentor().instrument(engine=engine.sync_engine, enable_commenter=False)
