"""Server interceptor that every service and the gateway run: caller context, error mapping, access
log and RED metrics for each call, whatever its streaming shape."""

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from opentelemetry import metrics

from chassis.caller import caller_from_metadata, current_caller, set_current_caller
from chassis.errors import DomainError
from chassis.status import STATUS_DETAILS_KEY, grpc_code, to_status

access_log = logging.getLogger("crm.access")
error_log = logging.getLogger("crm.errors")

_meter = metrics.get_meter("crm.chassis")
_duration = _meter.create_histogram(
    "rpc.server.duration", unit="ms", description="Duration of gRPC calls served, by method and code"
)

# A handler's behaviour is any of the four call shapes of any message types, and aio behaviours are
# coroutines while grpc's stubs describe the synchronous server's: no narrower type is true here.
Behaviour = Callable[..., Any]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"  # subscriptable only in the stubs
Request = TypeVar("Request")
Response = TypeVar("Response")


class ServiceCallInterceptor(grpc.aio.ServerInterceptor):
    """Binds the caller, maps domain errors to google.rpc.Status, logs and measures every call."""

    def __init__(self, error_domain: str, *, trust_caller_metadata: bool = True) -> None:
        self._error_domain = error_domain
        # Only servers behind the gateway believe caller metadata; the gateway sets it itself.
        self._trust_caller_metadata = trust_caller_metadata

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Request, Response] | None"]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> "grpc.RpcMethodHandler[Request, Response] | None":
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, method: str, behaviour: Behaviour) -> Behaviour:
        async def serve(request: Any, context: Context) -> Any:
            started = self._begin(context)
            try:
                return await behaviour(request, context)
            except Exception as error:  # noqa: BLE001 - every failure becomes a proper status
                await self._abort(method, error, context)
            finally:
                self._finish(method, started, context)

        return serve

    def _wrap_stream(self, method: str, behaviour: Behaviour) -> Behaviour:
        async def serve(request: Any, context: Context) -> AsyncIterator[Any]:
            started = self._begin(context)
            try:
                responses = behaviour(request, context)
                if inspect.isasyncgen(responses):
                    async for response in responses:
                        yield response
                else:
                    # A handler may also write its stream with context.write() and return nothing.
                    await responses
            except Exception as error:  # noqa: BLE001 - every failure becomes a proper status
                await self._abort(method, error, context)
            finally:
                self._finish(method, started, context)

        return serve

    def _begin(self, context: Context) -> float:
        if self._trust_caller_metadata:
            set_current_caller(caller_from_metadata(context.invocation_metadata() or ()))
        return time.perf_counter()

    async def _abort(self, method: str, error: Exception, context: Context) -> None:
        """Ends the call with the status `error` stands for; re-raises gRPC's own abort."""
        if isinstance(error, grpc.aio.AbortError):
            raise error
        if isinstance(error, DomainError):
            code, status = grpc_code(error), to_status(error, self._error_domain)
        else:
            error_log.exception("unexpected error in %s", method)
            internal = DomainError("INTERNAL", "internal error; it was logged with this call's trace id")
            code, status = grpc.StatusCode.INTERNAL, to_status(internal, self._error_domain)
        details = dict(status.trailing_metadata)[STATUS_DETAILS_KEY]
        await context.abort(code, status.details, trailing_metadata=((STATUS_DETAILS_KEY, details),))

    @staticmethod
    def _finish(method: str, started: float, context: Context) -> None:
        final_code = _code_of(context) or grpc.StatusCode.OK
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


def _code_of(context: Context) -> grpc.StatusCode | None:
    # None until the call's code is set, whatever the stubs say.
    code: object = context.code()
    return code if isinstance(code, grpc.StatusCode) else None
