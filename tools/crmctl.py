"""crmctl: calls the CRM's gRPC API from the command line, JSON in and JSON out.

    python -m tools.crmctl [CALLER] [--target HOST:PORT] [--timeout SECONDS] COMMAND ...

Commands:
  list                         the services and methods the server offers
  call SERVICE/METHOD [JSON]   sends one request, written as proto3 JSON (field names in camelCase
                               or snake_case, enums by name; "-" reads it from stdin; default {}),
                               and prints the response as JSON
  get RESOURCE_NAME            the resource with that name: a customer, line or consent state
                               (customers/123, customers/123/subscriptions/456, customers/123/consentState),
                               a complaint or department (complaints/123, departments/billing-disputes),
                               a plan or bundle (plans/uz-start-5gb), tariff advice or a plan change
                               (tariffRecommendations/123, planChanges/123)
  search TEXT [--phone-region XX]
                               customers whose phone number (when TEXT looks like one) or name matches
  token (--role ROLE ... | --customer customers/ID) [--subject NAME] [--lifetime SECONDS]
                               prints a token signed with the local signing key, for any gRPC tool
                               (`authorization: Bearer <token>`)

Who calls (CALLER, before or after the command):
  --role ROLE [--role ROLE ...] [--user NAME]
                               an employee with those roles (agent, supervisor, marketing,
                               back-office, sre, admin): a token signed with the local key, subject NAME
  --customer customers/ID      that customer, for themselves: a token signed with the local key
  --cert FILE --key FILE       a retail partner, with its client certificate, at --partner-address
  --token TOKEN                a bearer token from anywhere (an identity provider, `crmctl token`)
  (none)                       the development identity `x-crm-user: NAME` (--user, default "cli"),
                               which only a gateway with GATEWAY_DEVELOPMENT_IDENTITY=true accepts
                               (`make run` turns it on)

Examples:
  python -m tools.crmctl list
  python -m tools.crmctl --role agent call crm.customer.v1.CustomerService/SearchCustomers '{"nameQuery": "nguyen"}'
  python -m tools.crmctl --role agent search "+998 90 123-45-67"
  python -m tools.crmctl --customer customers/123 call crm.loyalty.v1.LoyaltyService/GetBalance \
      '{"name": "accounts/123/balance"}'
  python -m tools.crmctl --cert .data/credentials/partner-texnomart.pem \
      --key .data/credentials/partner-texnomart.key search 0501234567 --phone-region UA
  python -m tools.crmctl --role agent get plans/uz-start-5gb
  python -m tools.crmctl --role agent call crm.offers.v1.OfferService/RecommendTariff \
      '{"subscription": "customers/123/subscriptions/456"}'
  python -m tools.crmctl --customer customers/123 get complaints/789
  python -m tools.crmctl token --role supervisor --subject alice

Calls go over TLS, the gateway's certificate verified with --ca (default: the local CA that `make
run` makes, <CRM_DATA_DIR or .data>/credentials/ca.pem); tokens are signed with the key beside it
(--credentials). The server describes its API through gRPC server reflection, so no local .proto
file is needed; where it keeps reflection to employees, crmctl reads this checkout's generated code
instead. Every call carries the deadline --timeout (default 10 s). A failed call prints its gRPC
code and message and the details of its google.rpc.Status (ErrorInfo reason and domain, BadRequest
field violations, RetryInfo, ...) on stderr and exits with 1; bad usage and missing credentials
exit with 2.
"""

import argparse
import collections
import importlib
import json
import os
import pkgutil
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import grpc
from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

import crm
from tools.credentials import CertificateFiles
from tools.local_gateway import (
    DEFAULT_ADDRESS,
    DEFAULT_PARTNER_ADDRESS,
    MissingCredentials,
    bearer,
    credentials_dir,
    existing_credentials,
    partner_tls,
    shown_path,
    tls,
)

if TYPE_CHECKING:
    # The call objects a continuation returns exist in grpc's stubs only.
    from grpc import _CallFuture, _CallIterator

USER_METADATA_KEY = "x-crm-user"
DEFAULT_USER = "cli"
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600
CUSTOMER_SERVICE = "crm.customer.v1.CustomerService"
_GET_METHODS = (
    (re.compile(r"^customers/[^/]+$"), f"{CUSTOMER_SERVICE}/GetCustomer"),
    (re.compile(r"^customers/[^/]+/subscriptions/[^/]+$"), f"{CUSTOMER_SERVICE}/GetSubscription"),
    (re.compile(r"^customers/[^/]+/consentState$"), f"{CUSTOMER_SERVICE}/GetConsentState"),
    (re.compile(r"^complaints/[^/]+$"), "crm.complaints.v1.ComplaintService/GetComplaint"),
    (re.compile(r"^departments/[^/]+$"), "crm.complaints.v1.ComplaintService/GetDepartment"),
    (re.compile(r"^(plans|bundles)/[^/]+$"), "crm.offers.v1.OfferService/GetProductOffering"),
    (re.compile(r"^tariffRecommendations/[^/]+$"), "crm.offers.v1.OfferService/GetTariffRecommendation"),
    (re.compile(r"^planChanges/[^/]+$"), "crm.offers.v1.OfferService/GetPlanChange"),
)
_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{6,}$")

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class UsageError(Exception):
    """The command line asks for something that cannot be done."""


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    """Call details with the deadline and metadata filled in."""


class _CallDefaults(
    grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor
):
    """Gives every call on the channel the deadline and the caller's metadata, the reflection
    client's calls included (it sets neither)."""

    def __init__(self, timeout_seconds: float, metadata: Sequence[tuple[str, str]]) -> None:
        self._timeout_seconds = timeout_seconds
        self._metadata = list(metadata)

    def _with_defaults(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            self._timeout_seconds,
            [*(details.metadata or ()), *self._metadata],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, _Request], "_CallFuture[_Response]"],
        client_call_details: grpc.ClientCallDetails,
        request: _Request,
    ) -> "_CallFuture[_Response]":
        return continuation(self._with_defaults(client_call_details), request)

    def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, _Request], "_CallIterator[_Response]"],
        client_call_details: grpc.ClientCallDetails,
        request: _Request,
    ) -> "_CallIterator[_Response]":
        return continuation(self._with_defaults(client_call_details), request)

    def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Iterator[_Request]], "_CallIterator[_Response]"],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[_Request],
    ) -> "_CallIterator[_Response]":
        return continuation(self._with_defaults(client_call_details), request_iterator)


class ServerApi:
    """The API of the server at the other end of a channel, as its reflection service describes it,
    or as this checkout's generated code does when the server keeps reflection to employees."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        database = ProtoReflectionDescriptorDatabase(channel)
        try:
            self._services = sorted(database.get_services())
            self._pool = descriptor_pool.DescriptorPool(database)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            print(
                "crmctl: the server describes its API to employees only; using this checkout's generated code",
                file=sys.stderr,
            )
            self._services = _generated_services()
            self._pool = descriptor_pool.Default()

    def services(self) -> list[str]:
        """Full names of the services the server offers."""
        return self._services

    def methods(self, service: str) -> list[MethodDescriptor]:
        """The methods of `service`."""
        try:
            return list(self._pool.FindServiceByName(service).methods)
        except KeyError:
            raise UsageError(f"the server offers no service {service!r}; see `crmctl list`") from None

    def call(self, method_path: str, request_json: str) -> Iterable[str]:
        """Sends `request_json` to `Service/Method` and yields the response (one per message of a
        server stream) as JSON."""
        service, _, name = method_path.strip("/").rpartition("/")
        method = next((m for m in self.methods(service) if m.name == name), None)
        if method is None:
            raise UsageError(f"{service} has no method {name!r}; see `crmctl list`")
        if method.client_streaming:
            raise UsageError(f"{method_path} takes a stream of requests, which crmctl does not send")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        try:
            request = json_format.Parse(request_json, request_class(), descriptor_pool=self._pool)
        except json_format.ParseError as error:
            raise UsageError(f"the request is not a valid {method.input_type.full_name}: {error}") from None
        path = f"/{service}/{name}"
        serialize = request_class.SerializeToString
        if method.server_streaming:
            stream = self._channel.unary_stream(path, serialize, response_class.FromString)
            for response in stream(request):
                yield self._json(response)
        else:
            yield self._json(self._channel.unary_unary(path, serialize, response_class.FromString)(request))

    def _json(self, message: Message) -> str:
        return json_format.MessageToJson(message, descriptor_pool=self._pool, ensure_ascii=False, indent=2)


def _generated_services() -> list[str]:
    """Full names of the services in this checkout's generated code (importing it fills the default pool)."""
    names = []
    for module in pkgutil.walk_packages(crm.__path__, "crm."):
        if module.name.endswith("_pb2"):
            names += importlib.import_module(module.name).DESCRIPTOR.services_by_name.keys()
    return sorted(names)


def describe_error(error: grpc.RpcError) -> list[str]:
    """Lines that tell what went wrong: code, message, and each detail of the google.rpc.Status."""
    lines = [f"error: {error.code().name}: {error.details()}"]
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        status = None
    for detail in status.details if status is not None else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            lines.append(f"  reason: {info.reason} (domain {info.domain})")
            lines += [f"    {key}: {value}" for key, value in sorted(info.metadata.items())]
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            lines += [f"  field {v.field}: {v.description}" for v in bad_request.field_violations]
        else:
            lines.append(f"  {detail.TypeName()}: {_any_as_json(detail)}")
    return lines


def _any_as_json(detail: any_pb2.Any) -> str:
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(detail.TypeName())
    except KeyError:
        return f"({len(detail.value)} bytes)"
    message = message_factory.GetMessageClass(descriptor)()
    detail.Unpack(message)
    return json.dumps(json_format.MessageToDict(message), ensure_ascii=False)


def _parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.crmctl",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Run `python -m pydoc tools.crmctl` for more.",
    )
    _add_common_options(parser, with_defaults=True)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="services and methods the server offers")
    call = commands.add_parser("call", help="send one request as JSON, print the response as JSON")
    call.add_argument("method", help="Service/Method, e.g. crm.customer.v1.CustomerService/GetCustomer")
    call.add_argument("request", nargs="?", default="{}", help='request as JSON (default {}); "-" reads stdin')
    get = commands.add_parser("get", help="a customer, line, complaint, plan ... by resource name")
    get.add_argument(
        "name",
        help="customers/ID, customers/ID/subscriptions/ID, customers/ID/consentState, complaints/ID, "
        "departments/ID, plans/ID, bundles/ID, tariffRecommendations/ID or planChanges/ID",
    )
    search = commands.add_parser("search", help="customers by phone number or name")
    search.add_argument("text", help='a phone number ("+998 90 123-45-67") or part of a name ("nguyen")')
    search.add_argument("--phone-region", default="", help="country of a number written without country code")
    token = commands.add_parser("token", help="print a token signed with the local signing key")
    token.add_argument(
        "--lifetime",
        type=int,
        default=DEFAULT_TOKEN_LIFETIME_SECONDS,
        help="seconds the token is valid (default %(default)s)",
    )
    for command in (listing, call, get, search, token):
        # Also after the command (`crmctl token --role agent`); given there, they win.
        _add_common_options(command, with_defaults=False)
    return parser.parse_args(argv)


def _add_common_options(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    def default(value: object) -> object:
        return value if with_defaults else argparse.SUPPRESS

    where = parser.add_argument_group("where")
    where.add_argument(
        "--target",
        metavar="HOST:PORT",
        default=default(DEFAULT_ADDRESS),
        help=f"the gateway's TLS host:port (default {DEFAULT_ADDRESS})",
    )
    where.add_argument(
        "--partner-address",
        metavar="HOST:PORT",
        default=default(DEFAULT_PARTNER_ADDRESS),
        help=f"the gateway's mutual-TLS host:port for --cert (default {DEFAULT_PARTNER_ADDRESS})",
    )
    where.add_argument(
        "--credentials",
        metavar="DIR",
        type=Path,
        default=default(credentials_dir()),
        help=f"the local credentials of `make run` (default {shown_path(credentials_dir())})",
    )
    where.add_argument(
        "--ca",
        metavar="FILE",
        type=Path,
        default=default(None),
        help="the CA that verifies the gateway (default: ca.pem there)",
    )
    where.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=default(10.0),
        help="deadline of each call in seconds (default 10)",
    )
    caller = parser.add_argument_group("who calls")
    caller.add_argument(
        "--role",
        metavar="ROLE",
        dest="roles",
        action="append",
        default=default(None),
        help="call as an employee with this role (repeat for more); a token signed with the local key",
    )
    caller.add_argument(
        "--user",
        "--subject",
        metavar="NAME",
        dest="user",
        default=default(DEFAULT_USER),
        help=f"the employee: a token's subject, or the development identity {USER_METADATA_KEY}"
        f" (default {DEFAULT_USER})",
    )
    caller.add_argument(
        "--customer",
        metavar="customers/ID",
        default=default(""),
        help="call as this customer (customers/ID), for themselves",
    )
    caller.add_argument(
        "--cert", metavar="FILE", type=Path, default=default(None), help="a retail partner's client certificate (PEM)"
    )
    caller.add_argument(
        "--key", metavar="FILE", type=Path, default=default(None), help="the private key of --cert (PEM)"
    )
    caller.add_argument("--token", metavar="TOKEN", default=default(""), help="call with this bearer token")


def _signed_token(arguments: argparse.Namespace) -> str:
    """The token --role or --customer asks for, signed with the local key; "" when neither is given."""
    roles: list[str] = arguments.roles or []
    if roles and arguments.customer:
        raise UsageError("--role is an employee's, --customer a customer's: give one of them")
    if not roles and not arguments.customer:
        return ""
    credentials = existing_credentials(arguments.credentials)
    lifetime = getattr(arguments, "lifetime", DEFAULT_TOKEN_LIFETIME_SECONDS)
    if arguments.customer:
        if not re.fullmatch(r"customers/[^/]+", arguments.customer):
            raise UsageError(f"--customer takes a customer's name, customers/ID; got {arguments.customer!r}")
        return credentials.customer_token(arguments.customer, lifetime_seconds=lifetime)
    return credentials.employee_token(arguments.user, roles, lifetime_seconds=lifetime)


def _channel(arguments: argparse.Namespace) -> tuple[grpc.Channel, list[tuple[str, str]]]:
    """A channel to the gateway as the caller the options name, and the metadata every call carries."""
    authority: Path = arguments.ca or arguments.credentials / "ca.pem"
    token = _signed_token(arguments)
    partner = arguments.cert is not None or arguments.key is not None
    if sum((bool(token), bool(arguments.token), partner)) > 1:
        raise UsageError("call as one caller: --role, --customer, --token or --cert/--key")
    if not authority.is_file():
        raise MissingCredentials(
            f"no CA to verify the gateway with at {shown_path(authority)}: run `make run` once to create the"
            " local credentials, or pass --ca"
        )
    if partner:
        if arguments.cert is None or arguments.key is None:
            raise UsageError("a partner calls with both --cert and --key")
        files = CertificateFiles(arguments.cert, arguments.key)
        for path in (files.certificate, files.key):
            if not path.is_file():
                raise MissingCredentials(f"no such file: {path}")
        return grpc.secure_channel(arguments.partner_address, partner_tls(authority, files)), []
    if token or arguments.token:
        return grpc.secure_channel(arguments.target, bearer(authority, token or arguments.token)), []
    return grpc.secure_channel(arguments.target, tls(authority)), [(USER_METADATA_KEY, arguments.user)]


def _method_and_request(arguments: argparse.Namespace) -> tuple[str, str]:
    if arguments.command == "call":
        request = sys.stdin.read() if arguments.request == "-" else arguments.request
        return arguments.method, request
    if arguments.command == "get":
        method = next((method for pattern, method in _GET_METHODS if pattern.match(arguments.name)), None)
        if method is None:
            raise UsageError(f"crmctl cannot get {arguments.name!r}; see `crmctl get --help` for the names it knows")
        return method, json.dumps({"name": arguments.name})
    if _PHONE_LIKE.match(arguments.text):
        criteria = {"phoneNumber": arguments.text, "phoneRegionCode": arguments.phone_region.upper()}
    else:
        criteria = {"nameQuery": arguments.text}
    return f"{CUSTOMER_SERVICE}/SearchCustomers", json.dumps(criteria, ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns the exit code (0 done, 1 the call failed, 2 bad usage or no credentials)."""
    arguments = _parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        if arguments.command == "token":
            token = _signed_token(arguments)
            if not token:
                raise UsageError("a token is an employee's (--role ROLE) or a customer's (--customer customers/ID)")
            print(token)
            return 0
        channel, metadata = _channel(arguments)
    except (UsageError, MissingCredentials) as error:
        print(f"crmctl: {error}", file=sys.stderr)
        return 2
    with channel:
        try:
            api = ServerApi(grpc.intercept_channel(channel, _CallDefaults(arguments.timeout, metadata)))
            if arguments.command == "list":
                for service in api.services():
                    print(service)
                    for method in api.methods(service):
                        print(
                            f"  {method.name}({_stream(method.client_streaming)}{method.input_type.full_name})"
                            f" returns ({_stream(method.server_streaming)}{method.output_type.full_name})"
                        )
            else:
                for response in api.call(*_method_and_request(arguments)):
                    print(response)
        except UsageError as error:
            print(f"crmctl: {error}", file=sys.stderr)
            return 2
        except grpc.RpcError as error:
            print("\n".join(describe_error(error)), file=sys.stderr)
            return 1
        except BrokenPipeError:
            # The reader (`| head`) has seen enough; Python would complain again when flushing at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _stream(streaming: bool) -> str:
    return "stream " if streaming else ""


if __name__ == "__main__":
    sys.exit(main())
