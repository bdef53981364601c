"""The one mapping between domain errors and `google.rpc.Status`, in both directions.

Servers turn a `DomainError` into a status with an `ErrorInfo` (reason, domain, metadata) and, for
bad input, a `BadRequest` with field violations. Clients turn a failed call back into the same
`DomainError`, so code on both sides branches on `reason`, not on message text.
"""

import datetime
from collections.abc import Iterable
from typing import Protocol

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from chassis.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

STATUS_DETAILS_KEY = "grpc-status-details-bin"

_CODES: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Aborted: grpc.StatusCode.ABORTED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_ERRORS = {code: error for error, code in _CODES.items()}


def grpc_code(error: DomainError) -> grpc.StatusCode:
    """The canonical gRPC code of a domain error."""
    for error_type in type(error).__mro__:
        if error_type in _CODES:
            return _CODES[error_type]
    return grpc.StatusCode.INTERNAL


def to_status(error: DomainError, domain: str) -> grpc.Status:
    """A grpc.Status carrying ErrorInfo (and BadRequest for invalid input) for `error`."""
    code = grpc_code(error)
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    details = [_pack(info)]
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        details.append(_pack(bad_request))
    if isinstance(error, ResourceExhausted) and error.retry_after_seconds > 0:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(datetime.timedelta(seconds=error.retry_after_seconds))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


class FailedCall(Protocol):
    """A failed call as both grpc APIs raise it (`grpc.aio.AioRpcError`, or a sync `grpc.RpcError`
    that is also a `grpc.Call`)."""

    def code(self) -> grpc.StatusCode:
        """The call's status code."""
        ...

    def details(self) -> str | None:
        """The status message."""
        ...

    def trailing_metadata(self) -> Iterable[tuple[str, str | bytes]] | None:
        """The trailing metadata, where the google.rpc.Status travels."""
        ...


def from_rpc_error(error: FailedCall) -> DomainError:
    """The domain error a failed call stands for; reason `UNKNOWN` when the server sent no ErrorInfo."""
    code = error.code()
    message = error.details() or ""
    status = status_of(error)
    reason, metadata, violations = "UNKNOWN", {}, []
    if status is not None:
        for detail in status.details:
            info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
            # Unpack fills the message only when the detail is of its type.
            if detail.Unpack(info):
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Unpack(bad_request):
                violations = [FieldViolation(v.field, v.description) for v in bad_request.field_violations]
    error_type = _ERRORS.get(code, DomainError)
    if error_type is InvalidArgument:
        return InvalidArgument(violations, reason=reason)
    return error_type(reason, message, metadata)


def status_of(error: FailedCall) -> status_pb2.Status | None:
    """The google.rpc.Status a failed call carried in its trailing metadata, if any."""
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def _pack(
    message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest | error_details_pb2.RetryInfo,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
