"""The one mapping between domain errors and google.rpc.Status: each error gets its canonical code and an
ErrorInfo, bad input adds BadRequest, and a client turns a failed call back into the same error."""

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

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
    etag_mismatch,
    invalid_field,
    not_found,
)
from chassis.status import STATUS_DETAILS_KEY, from_rpc_error, grpc_code, to_status

DOMAIN = "customer.crm"
METADATA = {"resource_name": "customers/42", "rule": "churn-needs-reason"}

CODED_ERRORS: list[tuple[DomainError, grpc.StatusCode]] = [
    (NotFound("CUSTOMER_NOT_FOUND", "customer customers/42 does not exist", METADATA), grpc.StatusCode.NOT_FOUND),
    (AlreadyExists("MSISDN_TAKEN", "+998901234567 is in use", METADATA), grpc.StatusCode.ALREADY_EXISTS),
    (
        FailedPrecondition("STATUS_TRANSITION_NOT_ALLOWED", "cannot", METADATA),
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
    (Aborted("ETAG_MISMATCH", "changed since read", METADATA), grpc.StatusCode.ABORTED),
    (PermissionDenied("ROLE_NOT_ALLOWED", "marketing may not read debts", METADATA), grpc.StatusCode.PERMISSION_DENIED),
    (Unauthenticated("NO_CREDENTIALS", "who are you", METADATA), grpc.StatusCode.UNAUTHENTICATED),
    (ResourceExhausted("RATE_LIMITED", "slow down", METADATA), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable("LOYALTY_DOWN", "try again", METADATA), grpc.StatusCode.UNAVAILABLE),
    (
        InvalidArgument([FieldViolation("customer.individual.birth_date", "must not be in the future")]),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (DomainError("SURPRISE", "no canonical code", METADATA), grpc.StatusCode.INTERNAL),
]
ERROR_IDS = [type(error).__name__ for error, _ in CODED_ERRORS]
VALID_INPUT_ERRORS = [error for error, _ in CODED_ERRORS if not isinstance(error, InvalidArgument)]
VIOLATIONS = [
    FieldViolation("customer.individual.given_name", "must not be empty"),
    FieldViolation("customer.contact_media[1].phone_number", "'12' is not a valid phone number"),
]


class FailedCall(grpc.RpcError):
    """What a client holds after a failed call: the status' code, message and trailing metadata."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__()
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return tuple(self._status.trailing_metadata)


class PlainFailedCall(grpc.RpcError):
    """A failed call whose server sent only a code and a message, no status details."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__()
        self._code, self._message = code, message

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return ()


def _rich_status(status: grpc.Status) -> status_pb2.Status:
    [value] = [value for key, value in status.trailing_metadata if key == STATUS_DETAILS_KEY]
    return status_pb2.Status.FromString(value)


def _error_info(status: grpc.Status) -> error_details_pb2.ErrorInfo:
    infos = [d for d in _rich_status(status).details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    return info


def _bad_requests(status: grpc.Status) -> list[error_details_pb2.BadRequest]:
    found = []
    for detail in _rich_status(status).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.append(bad_request)
    return found


# to_status -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "code"), CODED_ERRORS, ids=ERROR_IDS)
def test_each_error_gets_its_canonical_code(error: DomainError, code: grpc.StatusCode) -> None:
    status = to_status(error, DOMAIN)
    assert status.code == code
    assert _rich_status(status).code == code.value[0]


@pytest.mark.parametrize(("error", "code"), CODED_ERRORS, ids=ERROR_IDS)
def test_status_message_is_the_error_message(error: DomainError, code: grpc.StatusCode) -> None:
    assert to_status(error, DOMAIN).details == error.message


@pytest.mark.parametrize(("error", "code"), CODED_ERRORS, ids=ERROR_IDS)
def test_error_info_carries_reason_service_domain_and_metadata(error: DomainError, code: grpc.StatusCode) -> None:
    info = _error_info(to_status(error, DOMAIN))
    assert (info.reason, info.domain, dict(info.metadata)) == (error.reason, DOMAIN, error.metadata)


def test_subclass_of_a_mapped_error_gets_its_parent_code() -> None:
    class StaleEtag(Aborted):
        """An etag that no longer matches."""

    assert grpc_code(StaleEtag("ETAG_MISMATCH", "stale")) == grpc.StatusCode.ABORTED


def test_invalid_argument_lists_every_field_violation_in_bad_request() -> None:
    [bad_request] = _bad_requests(to_status(InvalidArgument(VIOLATIONS), DOMAIN))
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        (v.field, v.description) for v in VIOLATIONS
    ]


def test_invalid_argument_reason_defaults_to_invalid_argument() -> None:
    assert _error_info(to_status(invalid_field("page_size", "must not be negative"), DOMAIN)).reason == (
        "INVALID_ARGUMENT"
    )


@pytest.mark.parametrize("error", VALID_INPUT_ERRORS, ids=lambda error: type(error).__name__)
def test_errors_other_than_invalid_argument_carry_no_bad_request(error: DomainError) -> None:
    assert _bad_requests(to_status(error, DOMAIN)) == []


def test_named_not_found_names_the_resource() -> None:
    info = _error_info(to_status(not_found("customer", "customers/42"), DOMAIN))
    assert (info.reason, dict(info.metadata)) == (
        "CUSTOMER_NOT_FOUND",
        {"resource_type": "customer", "resource_name": "customers/42"},
    )


# from_rpc_error ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "code"), CODED_ERRORS, ids=ERROR_IDS)
def test_failed_call_turns_back_into_the_same_error_type(error: DomainError, code: grpc.StatusCode) -> None:
    assert type(from_rpc_error(FailedCall(to_status(error, DOMAIN)))) is type(error)


@pytest.mark.parametrize(("error", "code"), CODED_ERRORS, ids=ERROR_IDS)
def test_failed_call_keeps_reason_message_and_metadata(error: DomainError, code: grpc.StatusCode) -> None:
    returned = from_rpc_error(FailedCall(to_status(error, DOMAIN)))
    assert (returned.reason, returned.message, returned.metadata) == (error.reason, error.message, error.metadata)


def test_failed_call_keeps_every_field_violation() -> None:
    returned = from_rpc_error(FailedCall(to_status(InvalidArgument(VIOLATIONS), DOMAIN)))
    assert isinstance(returned, InvalidArgument)
    assert returned.violations == VIOLATIONS


def test_failed_call_keeps_a_specific_invalid_argument_reason() -> None:
    error = InvalidArgument([FieldViolation("request_id", "was used for another request")], reason="REQUEST_ID_REUSED")
    returned = from_rpc_error(FailedCall(to_status(error, DOMAIN)))
    assert (type(returned), returned.reason) == (InvalidArgument, "REQUEST_ID_REUSED")


def test_named_etag_mismatch_survives_the_round_trip() -> None:
    error = etag_mismatch("customers/42")
    returned = from_rpc_error(FailedCall(to_status(error, DOMAIN)))
    assert (type(returned), returned.reason, returned.metadata) == (Aborted, "ETAG_MISMATCH", error.metadata)


def test_failed_call_without_status_details_has_reason_unknown() -> None:
    returned = from_rpc_error(PlainFailedCall(grpc.StatusCode.NOT_FOUND, "no such customer"))
    assert (type(returned), returned.reason, returned.message, returned.metadata) == (
        NotFound,
        "UNKNOWN",
        "no such customer",
        {},
    )


def test_failed_call_with_an_unmapped_code_is_a_plain_domain_error() -> None:
    returned = from_rpc_error(PlainFailedCall(grpc.StatusCode.DATA_LOSS, "lost"))
    assert type(returned) is DomainError


def test_failed_call_with_deadline_exceeded_is_deadline_exceeded() -> None:
    returned = from_rpc_error(PlainFailedCall(grpc.StatusCode.DEADLINE_EXCEEDED, "too slow"))
    assert type(returned) is DeadlineExceeded
