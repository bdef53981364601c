"""Generic forwarding of every exposed method to its backend, bytes in and bytes out.

Each call, authenticated and authorised by the gateway's guard (`gateway.access`), is sent on with
the caller's remaining deadline (capped), the trace context (in a client span of the forwarder's own,
on channels without interceptors) and the caller identity; the backend's status code, message and
details (ErrorInfo, BadRequest) come back unchanged.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.descriptor import MethodDescriptor
from opentelemetry import trace

from chassis.caller import current_caller
from chassis.errors import DomainError
from chassis.status import STATUS_DETAILS_KEY, to_status
from chassis.telemetry import client_span, end_call_span
from gateway.access import forwardable_metadata
from gateway.routes import ExposedService

ERROR_DOMAIN = "gateway.crm"
"""The `ErrorInfo.domain` of errors the gateway makes itself (a backend's own errors keep theirs)."""

# Forwarded messages stay bytes: the gateway neither parses nor re-encodes them.
Context: TypeAlias = "grpc.aio.ServicerContext[bytes, bytes]"  # subscriptable only in the stubs


class Forwarder:
    """Builds the gateway's generic handlers for a set of exposed services."""

    def __init__(self, channels: dict[str, grpc.aio.Channel], max_deadline_seconds: float) -> None:
        self._channels = channels
        self._max_deadline = max_deadline_seconds
        self._tracer = trace.get_tracer("crm.gateway")

    def handlers(self, services: tuple[ExposedService, ...]) -> list[grpc.GenericRpcHandler]:
        """One generic handler per exposed service, covering its public methods."""
        return [
            grpc.method_handlers_generic_handler(
                service.name, {m.name: self._handler(service, m) for m in service.public_methods}
            )
            for service in services
        ]

    def _handler(self, service: ExposedService, method: MethodDescriptor) -> "grpc.RpcMethodHandler[bytes, bytes]":
        path = f"/{service.name}/{method.name}"
        channel = self._channels[service.name]
        if method.client_streaming and method.server_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(service.name, path, channel.stream_stream(path))
            )
        if method.server_streaming:
            return grpc.unary_stream_rpc_method_handler(self._streaming(service.name, path, channel.unary_stream(path)))
        if method.client_streaming:
            return grpc.stream_unary_rpc_method_handler(self._unary(service.name, path, channel.stream_unary(path)))
        return grpc.unary_unary_rpc_method_handler(self._unary(service.name, path, channel.unary_unary(path)))

    def _unary(
        self, service: str, path: str, call: Callable[..., Awaitable[bytes]]
    ) -> Callable[[Any, Context], Awaitable[bytes]]:
        async def forward(request: Any, context: Context) -> bytes:
            timeout, metadata = self._call_options(context)
            with client_span(self._tracer, path, metadata) as span:
                try:
                    response = await call(request, timeout=timeout, metadata=metadata)
                except grpc.aio.AioRpcError as error:
                    end_call_span(span, error.code())
                    await _relay_error(error, context, service)
                    raise  # pragma: no cover - relay always aborts
                end_call_span(span, grpc.StatusCode.OK)
                return response

        return forward

    def _streaming(
        self, service: str, path: str, call: Callable[..., Any]
    ) -> Callable[[Any, Context], AsyncIterator[bytes]]:
        async def forward(request: Any, context: Context) -> AsyncIterator[bytes]:
            timeout, metadata = self._call_options(context)
            with client_span(self._tracer, path, metadata) as span:
                try:
                    async for response in call(request, timeout=timeout, metadata=metadata):
                        yield response
                except grpc.aio.AioRpcError as error:
                    end_call_span(span, error.code())
                    await _relay_error(error, context, service)
                end_call_span(span, grpc.StatusCode.OK)

        return forward

    def _call_options(self, context: Context) -> tuple[float, list[tuple[str, str | bytes]]]:
        """The backend call's timeout and metadata."""
        # The gateway's guard has proven and authorised the caller before this handler runs.
        metadata = tuple(context.invocation_metadata() or ())
        caller = current_caller()
        remaining = context.time_remaining()
        timeout = self._max_deadline if remaining is None else min(remaining, self._max_deadline)
        return timeout, forwardable_metadata(metadata, caller)


# Codes a failure gets from the transport rather than from a backend's own answer.
_TRANSPORT_FAILURES = {
    grpc.StatusCode.UNAVAILABLE: ("BACKEND_UNAVAILABLE", "is unavailable; retry shortly"),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("BACKEND_DEADLINE_EXCEEDED", "did not answer in time"),
    grpc.StatusCode.UNKNOWN: ("BACKEND_FAILED", "failed unexpectedly"),
    grpc.StatusCode.INTERNAL: ("BACKEND_FAILED", "failed unexpectedly"),
    grpc.StatusCode.CANCELLED: ("BACKEND_CANCELLED", "cancelled the call"),
}


async def _relay_error(error: grpc.aio.AioRpcError, context: Context, service: str) -> None:
    """Ends the call with the backend's code, message and status details. A failure the backend did
    not describe itself (it could not be reached, or the connection broke) becomes the gateway's own
    status naming the service: transport messages carry internal addresses callers must not see."""
    details = [(k, v) for k, v in (error.trailing_metadata() or ()) if k == STATUS_DETAILS_KEY]
    if details or error.code() not in _TRANSPORT_FAILURES:
        await context.abort(error.code(), error.details() or "", trailing_metadata=tuple(details))
    reason, what = _TRANSPORT_FAILURES[error.code()]
    status = to_status(DomainError(reason, f"{service} {what}", {"service": service}), ERROR_DOMAIN)
    await context.abort(error.code(), status.details, trailing_metadata=status.trailing_metadata)
