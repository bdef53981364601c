"""How the local tools call the gateway as each kind of caller, with the credentials `make run` keeps
under `<CRM_DATA_DIR>/credentials/` (tools.credentials makes them):

- an employee or a customer: TLS to the main address, verified with the operator CA, and a bearer
  token signed by the local signing key on every call;
- a retail partner: mutual TLS to the partner address with the partner's client certificate.

Channels from here pace their calls below the gateway's default rate for their kind of caller and,
should the gateway still answer RESOURCE_EXHAUSTED (a gateway set to a lower rate), wait as long as
its RetryInfo says and send the call again. A caller that needs more than its rate spreads the work
over several identities, each with its own rate. What a busy machine refuses for the moment
(UNAVAILABLE, ABORTED, a statement's DEADLINE_EXCEEDED) they send again, as declared in the channel's
service config (`RETRYING`).
"""

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2

from chassis.status import FailedCall, status_of
from tools.credentials import CertificateFiles, LocalCredentials, ensure_local_credentials

REPOSITORY = Path(__file__).resolve().parent.parent
DATA_DIR_VARIABLE = "CRM_DATA_DIR"
DEFAULT_DATA_DIR = REPOSITORY / ".data"
DEFAULT_ADDRESS = "127.0.0.1:50050"
DEFAULT_PARTNER_ADDRESS = "127.0.0.1:50060"
# Below the gateway's default rates (GATEWAY_EMPLOYEE_RATE_PER_SECOND 100, ..._CUSTOMER_... 10,
# ..._RETAILER_... 200), so that a load is not refused and no refusal fills the audit trail.
EMPLOYEE_CALLS_PER_SECOND = 90.0
CUSTOMER_CALLS_PER_SECOND = 8.0
RETAILER_CALLS_PER_SECOND = 180.0
# How many calls may go at once before pacing sets in (well inside every default burst).
PACED_BURST = 8
# Refused calls are sent again this often at most; each wait is what the gateway's RetryInfo says.
MAX_RATE_LIMITED_ATTEMPTS = 10
MAX_RETRY_DELAY_SECONDS = 10.0
_REQUIRED_FILES = ("ca.pem", "token-signing.key", "jwks.json")
RETRIED_SERVICES = (
    "crm.customer.v1.CustomerService",
    "crm.customer.v1.UsageService",
    "crm.customer.v1.BillingService",
    "crm.customer.v1.SegmentService",
    "crm.loyalty.v1.LoyaltyService",
    "crm.complaints.v1.ComplaintService",
    "crm.offers.v1.OfferService",
)
# Safe to send again: every mutation the tools send carries a request_id (the same id gets the first
# answer), ABORTED is a lost race on the same row, and a server's DEADLINE_EXCEEDED is a statement
# that ran out of time on a busy database (the call's own deadline still bounds every attempt).
_RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED"],
}

ChannelOptions = Sequence[tuple[str, str | int]]
RETRYING: ChannelOptions = (
    (
        "grpc.service_config",
        json.dumps(
            {"methodConfig": [{"name": [{"service": name} for name in RETRIED_SERVICES], "retryPolicy": _RETRY_POLICY}]}
        ),
    ),
    ("grpc.enable_retries", 1),
)
"""Channel options that send again what is safe to send again."""
_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class MissingCredentials(Exception):
    """The local credentials are not there yet; the message says how to make them."""


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where this machine's state goes: `CRM_DATA_DIR`, or `.data` in the repository."""
    raw = environ.get(DATA_DIR_VARIABLE, "").strip()
    return Path(raw).expanduser().resolve() if raw else DEFAULT_DATA_DIR


def credentials_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where `make run` keeps the local credentials."""
    return data_dir(environ) / "credentials"


def existing_credentials(directory: Path) -> LocalCredentials:
    """The credentials `make run` made in `directory`; MissingCredentials when there are none, since
    new ones would not be the ones the running gateway trusts."""
    missing = [name for name in _REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise MissingCredentials(
            f"no local credentials in {shown_path(directory)} ({', '.join(missing)} missing): "
            "run `make run` once to create them"
        )
    return ensure_local_credentials(directory)


def tls(authority: Path) -> grpc.ChannelCredentials:
    """TLS that trusts the gateway's certificate from the CA in `authority` (PEM), with no caller credentials."""
    return grpc.ssl_channel_credentials(root_certificates=authority.read_bytes())


def bearer(authority: Path, token: str) -> grpc.ChannelCredentials:
    """TLS with `authorization: Bearer <token>` on every call."""
    return grpc.composite_channel_credentials(tls(authority), grpc.access_token_call_credentials(token))


def partner_tls(authority: Path, certificate: CertificateFiles) -> grpc.ChannelCredentials:
    """Mutual TLS presenting a partner's client certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=authority.read_bytes(),
        private_key=certificate.key.read_bytes(),
        certificate_chain=certificate.certificate.read_bytes(),
    )


def partner_name(retailer: str) -> str:
    """The partner whose certificate names `crm://retailers/{retailer}`, as the gateway, customers'
    `retailer_id` and the loyalty service's `partner` name it: `retailers/{retailer}`."""
    return f"retailers/{retailer}"


def retry_delay(error: FailedCall) -> float | None:
    """How long a RESOURCE_EXHAUSTED answer asks to wait (its RetryInfo); None for any other failure."""
    if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    status = status_of(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return min(info.retry_delay.ToTimedelta().total_seconds(), MAX_RETRY_DELAY_SECONDS)
    return None


class Pace:
    """Spaces calls `1 / per_second` apart after a first `burst` (the generic cell rate algorithm:
    each call takes the next slot; no lock, as nothing awaits between reading and taking a slot)."""

    def __init__(self, per_second: float, burst: int = PACED_BURST) -> None:
        self._interval = 1.0 / per_second
        self._tolerance = self._interval * (burst - 1)
        self._next_slot = 0.0

    async def wait(self) -> None:
        """Returns when the next call may go."""
        now = asyncio.get_running_loop().time()
        slot = max(self._next_slot, now)
        self._next_slot = slot + self._interval
        delay = slot - self._tolerance - now
        if delay > 0:
            await asyncio.sleep(delay)


class RateLimitedCalls(grpc.aio.UnaryUnaryClientInterceptor):
    """Paces unary calls and sends a call refused for its rate again after the wait its RetryInfo names."""

    def __init__(self, pace: Pace) -> None:
        self._pace = pace

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, _Request], Awaitable[grpc.aio.UnaryUnaryCall[_Request, _Response]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: _Request,
    ) -> _Response | grpc.aio.UnaryUnaryCall[_Request, _Response]:
        for attempt in range(1, MAX_RATE_LIMITED_ATTEMPTS + 1):
            await self._pace.wait()
            call = await continuation(client_call_details, request)
            try:
                await call
            except grpc.aio.AioRpcError as error:
                delay = retry_delay(error)
                if delay is None or attempt == MAX_RATE_LIMITED_ATTEMPTS:
                    return call
                await asyncio.sleep(delay)
                continue
            return call
        raise AssertionError("not reached: the last attempt returns its call")


@dataclass(frozen=True)
class LocalGateway:
    """The gateway of a local run and the credentials its callers hold."""

    credentials: LocalCredentials
    address: str = DEFAULT_ADDRESS
    """The TLS address of employees' and customers' apps."""
    partner_address: str = DEFAULT_PARTNER_ADDRESS
    """The mutual-TLS address of retail partners."""

    def as_employee(
        self, subject: str, roles: Sequence[str], *, options: ChannelOptions = RETRYING
    ) -> grpc.aio.Channel:
        """A channel calling as the employee `subject` with `roles` (`options`: by default RETRYING)."""
        token = self.credentials.employee_token(subject, roles)
        return _channel(self.address, bearer(self._authority, token), EMPLOYEE_CALLS_PER_SECOND, options)

    def as_customer(self, customer: str, *, options: ChannelOptions = RETRYING) -> grpc.aio.Channel:
        """A channel calling as the customer `customers/{id}`, for themselves."""
        token = self.credentials.customer_token(customer)
        return _channel(self.address, bearer(self._authority, token), CUSTOMER_CALLS_PER_SECOND, options)

    def as_partner(self, retailer: str, *, options: ChannelOptions = RETRYING) -> grpc.aio.Channel:
        """A channel calling the partner address as the retail chain `retailer`, with its certificate."""
        certificate = partner_tls(self._authority, self.credentials.partner(retailer))
        return _channel(self.partner_address, certificate, RETAILER_CALLS_PER_SECOND, options)

    @property
    def _authority(self) -> Path:
        return self.credentials.authority.certificate


def _channel(
    target: str, credentials: grpc.ChannelCredentials, per_second: float, options: ChannelOptions
) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        target, credentials, options=list(options), interceptors=[RateLimitedCalls(Pace(per_second))]
    )


def shown_path(path: Path) -> Path:
    """`path` relative to the repository when it is inside it."""
    return path.relative_to(REPOSITORY) if path.is_relative_to(REPOSITORY) else path
