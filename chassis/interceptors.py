"""Server interceptor that every service and the gateway run: the call's span, admission under load,
request decoding, caller context, error mapping, access log and RED metrics for each call, whatever
its streaming shape. The wrapped handler of each method is made once and kept.

Health and reflection are never held back by admission, so probes answer however busy the server is.
Requests are decoded here rather than by grpc, so that bytes that are not the method's message are
INVALID_ARGUMENT with a reason, like any other bad input, instead of an UNKNOWN with internal names.
"""

import hashlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError
from opentelemetry import metrics, trace
from opentelemetry.trace import Span

from chassis.admission import Admission
from chassis.caller import SUBJECT_KEY, caller_from_metadata, current_caller, set_current_caller
from chassis.errors import DomainError, InvalidArgument
from chassis.guard import CallGuard, GuardedCall
from chassis.status import STATUS_DETAILS_KEY, grpc_code, to_status
from chassis.telemetry import end_call_span, server_span

access_log = logging.getLogger("crm.access")
error_log = logging.getLogger("crm.errors")

_meter = metrics.get_meter("crm.chassis")
_duration = _meter.create_histogram(
    "rpc.server.duration", unit="ms", description="Duration of gRPC calls served, by method and code"
)

# A handler's behaviour is any of the four call shapes of any message types, and aio behaviours are
# coroutines while grpc's stubs describe the synchronous server's: no narrower type is true here.
Behaviour = Callable[..., Any]
Deserializer = Callable[[bytes], Any]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"  # subscriptable only in the stubs
Request = TypeVar("Request")
Response = TypeVar("Response")

UNADMITTED_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
    # Followers hold their feed open for a minute at a time; they are few and must not starve.
    "/crm.common.v1.EventFeedService/",
)
"""Methods served whatever the load: probes, tools and event followers."""
# Keys a caller's fairness share is counted by, most specific first. The caller the gateway names
# counts only where that metadata is trusted: at the gateway a client could name a new one per call.
_TRUSTED_FAIRNESS_KEYS = (SUBJECT_KEY, "authorization", "x-crm-user")
_CLAIMED_FAIRNESS_KEYS = ("authorization", "x-crm-user")


class ServiceCallInterceptor(grpc.aio.ServerInterceptor):
    """Traces, admits, decodes, binds the caller, maps domain errors to google.rpc.Status, logs and measures."""

    def __init__(
        self,
        error_domain: str,
        *,
        admission: Admission | None = None,
        trust_caller_metadata: bool = True,
        guard: CallGuard | None = None,
    ) -> None:
        self._error_domain = error_domain
        self._admission = admission
        # Only servers behind the gateway believe caller metadata; the gateway sets it itself.
        self._trust_caller_metadata = trust_caller_metadata
        self._guard = guard
        self._tracer = trace.get_tracer("crm.chassis")
        # A server's handlers are registered before it starts: each method's wrapper is made once.
        self._wrapped: dict[str, Any] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Request, Response] | None"]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "grpc.RpcMethodHandler[Request, Response] | None":
        method = handler_call_details.method
        wrapped: grpc.RpcMethodHandler[Request, Response] | None = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return handler
            wrapped = self._wrapped[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(
        self, method: str, handler: "grpc.RpcMethodHandler[Request, Response]"
    ) -> "grpc.RpcMethodHandler[Request, Response]":
        admission = None if method.startswith(UNADMITTED_SERVICES) else self._admission
        decode = handler.request_deserializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary, _decode_one(decode), admission),
                None,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary, _decode_stream(decode), admission),
                None,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream, _decode_one(decode), admission),
                None,
                handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream, _decode_stream(decode), admission),
                None,
                handler.response_serializer,
            )
        return handler

    def _wrap_unary(
        self, method: str, behaviour: Behaviour, decode: Callable[[Any, str], Any], admission: Admission | None
    ) -> Behaviour:
        async def serve(request: Any, context: Context) -> Any:
            metadata = context.invocation_metadata()
            with server_span(self._tracer, method, metadata) as span:
                started = self._begin(metadata)
                holds_slot = False
                guarded: GuardedCall | None = None
                try:
                    guarded = await self._guarded(method, request, context)
                    holds_slot = await self._admitted(admission, context)
                    response = await behaviour(decode(request, method), context)
                    return response if guarded is None else guarded.respond(response)
                except Exception as error:  # noqa: BLE001 - every failure becomes a proper status
                    await self._abort(method, error, context)
                finally:
                    if admission is not None and holds_slot:
                        admission.release()
                    self._finish(method, started, context, guarded, span)

        return serve

    def _wrap_stream(
        self, method: str, behaviour: Behaviour, decode: Callable[[Any, str], Any], admission: Admission | None
    ) -> Behaviour:
        async def serve(request: Any, context: Context) -> AsyncIterator[Any]:
            metadata = context.invocation_metadata()
            with server_span(self._tracer, method, metadata) as span:
                started = self._begin(metadata)
                holds_slot = False
                guarded: GuardedCall | None = None
                try:
                    guarded = await self._guarded(method, request, context)
                    holds_slot = await self._admitted(admission, context)
                    responses = behaviour(decode(request, method), context)
                    if inspect.isasyncgen(responses):
                        async for response in responses:
                            yield response if guarded is None else guarded.respond(response)
                    else:
                        # A handler may also write its stream with context.write() and return nothing.
                        await responses
                except Exception as error:  # noqa: BLE001 - every failure becomes a proper status
                    await self._abort(method, error, context)
                finally:
                    if admission is not None and holds_slot:
                        admission.release()
                    self._finish(method, started, context, guarded, span)

        return serve

    async def _guarded(self, method: str, request: Any, context: Context) -> GuardedCall | None:
        """The call as the guard admitted it (it raises a refusal), None without a guard."""
        if self._guard is None:
            return None
        return await self._guard.admit(method, request if isinstance(request, bytes) else None, context)

    async def _admitted(self, admission: Admission | None, context: Context) -> bool:
        """Whether the call took a slot of `admission` (it raises when none frees in time)."""
        if admission is None:
            return False
        await admission.admit(self._fairness_key(context), context.time_remaining())
        return True

    def _begin(self, metadata: Any) -> float:
        if self._trust_caller_metadata:
            set_current_caller(caller_from_metadata(metadata or ()))
        return time.perf_counter()

    def _fairness_key(self, context: Context) -> str:
        if self._guard is not None:
            # The guard has established the caller: shares count by who they proved to be.
            caller = current_caller()
            return hashlib.blake2b(f"{caller.kind}:{caller.subject}".encode(), digest_size=8).hexdigest()
        return _fairness_key(context, _TRUSTED_FAIRNESS_KEYS if self._trust_caller_metadata else _CLAIMED_FAIRNESS_KEYS)

    async def _abort(self, method: str, error: Exception, context: Context) -> None:
        """Ends the call with the status `error` stands for; re-raises gRPC's own abort."""
        if isinstance(error, grpc.aio.AbortError):
            raise error
        if isinstance(error, DomainError):
            code, status = grpc_code(error), to_status(error, self._error_domain)
        else:
            error_log.exception("unexpected error in %s", method)
            trace.get_current_span().record_exception(error)
            internal = DomainError("INTERNAL", "internal error; it was logged with this call's trace id")
            code, status = grpc.StatusCode.INTERNAL, to_status(internal, self._error_domain)
        details = dict(status.trailing_metadata)[STATUS_DETAILS_KEY]
        await context.abort(code, status.details, trailing_metadata=((STATUS_DETAILS_KEY, details),))

    @staticmethod
    def _finish(method: str, started: float, context: Context, guarded: GuardedCall | None, span: Span) -> None:
        final_code = _code_of(context) or grpc.StatusCode.OK
        end_call_span(span, final_code)
        if guarded is not None:
            guarded.finish(final_code)
        elapsed_ms = (time.perf_counter() - started) * 1000
        _duration.record(elapsed_ms, {"rpc.method": method, "rpc.grpc.status_code": final_code.name})
        access_log.info(
            "served %s",
            method,
            extra={
                "rpc_method": method,
                "grpc_code": final_code.name,
                "duration_ms": round(elapsed_ms, 2),
                "caller": current_caller().subject,
            },
        )


def _decode_one(deserializer: Deserializer | None) -> Callable[[Any, str], Any]:
    """Parses a unary request (bytes when the method has no deserializer, as in the gateway)."""

    def decode(request: Any, method: str) -> Any:
        return request if deserializer is None else parsed_request(deserializer, request, method)

    return decode


def _decode_stream(deserializer: Deserializer | None) -> Callable[[Any, str], Any]:
    """Parses each message of a request stream as it is read."""

    def decode(requests: Any, method: str) -> Any:
        if deserializer is None:
            return requests

        async def parsed() -> AsyncIterator[Any]:
            async for request in requests:
                yield parsed_request(deserializer, request, method)

        return parsed()

    return decode


def parsed_request(deserializer: Deserializer, raw: bytes, method: str) -> Any:
    """`raw` decoded as `method`'s request; INVALID_ARGUMENT MALFORMED_REQUEST, with one warning line,
    when it is not one."""
    try:
        return deserializer(raw)
    except (DecodeError, ValueError, TypeError):
        error_log.warning("undecodable request to %s (%d bytes)", method, len(raw))
        raise InvalidArgument(
            [], reason="MALFORMED_REQUEST", message="the request is not a well-formed message of this method"
        ) from None


def _fairness_key(context: Context, keys: tuple[str, ...]) -> str:
    """Whose share of the server a call counts against: the caller it names, else its peer's host."""
    metadata = dict(context.invocation_metadata() or ())
    for key in keys:
        value = metadata.get(key)
        if value:
            text = value if isinstance(value, str) else value.decode(errors="replace")
            return hashlib.blake2b(f"{key}={text}".encode(), digest_size=8).hexdigest()
    return context.peer().rpartition(":")[0]


def _code_of(context: Context) -> grpc.StatusCode | None:
    # None until the call's code is set, whatever the stubs say.
    code: object = context.code()
    return code if isinstance(code, grpc.StatusCode) else None
