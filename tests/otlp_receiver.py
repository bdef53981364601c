"""A local OTLP/gRPC receiver that keeps the spans and metrics services export to it, for tests."""

import asyncio
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]


@dataclass
class Received:
    """Everything exported so far."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    metric_names: set[tuple[str, str]] = field(default_factory=set)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of one trace."""
        return [s for s in self.spans if s.trace_id == trace_id]


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self._received.spans.append(_flatten(service, span))
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.aio.ServicerContext
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        for resource_metrics in request.resource_metrics:
            service = next(
                (a.value.string_value for a in resource_metrics.resource.attributes if a.key == "service.name"), ""
            )
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    self._received.metric_names.add((service, metric.name))
        return metrics_service_pb2.ExportMetricsServiceResponse()


def _flatten(service: str, span: trace_pb2.Span) -> ReceivedSpan:
    return ReceivedSpan(
        service=service,
        name=span.name,
        kind=span.kind,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        attributes={a.key: a.value.string_value or str(a.value.int_value) for a in span.attributes},
    )


class OtlpReceiver:
    """Listens on 127.0.0.1 at a free port; `endpoint` is what OTEL_EXPORTER_OTLP_ENDPOINT should say."""

    def __init__(self) -> None:
        self.received = Received()
        self._server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self.received), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self.received), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        """The OTLP endpoint URL."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Starts receiving."""
        await self._server.start()

    async def stop(self) -> None:
        """Stops receiving."""
        await self._server.stop(0)

    async def wait_for_spans(
        self, trace_id: str, services: set[str], timeout_seconds: float = 10.0
    ) -> list[ReceivedSpan]:
        """The spans of a trace once every named service has exported at least one server span of it."""
        async with asyncio.timeout(timeout_seconds):
            while True:
                spans = self.received.trace(trace_id)
                if services <= {s.service for s in spans if s.kind == trace_pb2.Span.SPAN_KIND_SERVER}:
                    await asyncio.sleep(0.3)  # let the last batches (client and database spans) land too
                    return self.received.trace(trace_id)
                await asyncio.sleep(0.05)
