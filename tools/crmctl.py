"""crmctl: calls the CRM's gRPC API from the command line, JSON in and JSON out.

    python -m tools.crmctl [--target HOST:PORT] [--user NAME] [--timeout SECONDS] COMMAND ...

Commands:
  list                         the services and methods the server offers
  call SERVICE/METHOD [JSON]   sends one request, written as proto3 JSON (field names in camelCase
                               or snake_case, enums by name; "-" reads it from stdin; default {}),
                               and prints the response as JSON
  get RESOURCE_NAME            the customer, line or consent state with that name, e.g.
                               customers/123, customers/123/subscriptions/456, customers/123/consentState
  search TEXT [--phone-region XX]
                               customers whose phone number (when TEXT looks like one) or name matches

Examples:
  python -m tools.crmctl list
  python -m tools.crmctl call crm.customer.v1.CustomerService/SearchCustomers '{"nameQuery": "nguyen"}'
  python -m tools.crmctl search "+998 90 123-45-67"
  python -m tools.crmctl search 0501234567 --phone-region UA

The server describes its API through gRPC server reflection, so no local .proto file is needed.
Every call carries the deadline --timeout (default 10 s) and the metadata `x-crm-user: <--user>`
(default "cli"), which the gateway takes as the caller's identity. A failed call prints its gRPC
code and message and the details of its google.rpc.Status (ErrorInfo reason and domain, BadRequest
field violations, ...) on stderr and exits with 1; bad usage exits with 2.
"""

import argparse
import collections
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

import grpc
from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

if TYPE_CHECKING:
    # The call objects a continuation returns exist in grpc's stubs only.
    from grpc import _CallFuture, _CallIterator

DEFAULT_TARGET = "127.0.0.1:50050"
USER_METADATA_KEY = "x-crm-user"
CUSTOMER_SERVICE = "crm.customer.v1.CustomerService"
_GET_METHODS = (
    (re.compile(r"^customers/[^/]+$"), "GetCustomer"),
    (re.compile(r"^customers/[^/]+/subscriptions/[^/]+$"), "GetSubscription"),
    (re.compile(r"^customers/[^/]+/consentState$"), "GetConsentState"),
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


class ReflectedApi:
    """The API of the server at the other end of a channel, as its reflection service describes it."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._channel = channel
        self._database = ProtoReflectionDescriptorDatabase(channel)
        self._pool = descriptor_pool.DescriptorPool(self._database)

    def services(self) -> list[str]:
        """Full names of the services the server offers."""
        return sorted(self._database.get_services())

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
    parser.add_argument("--target", default=DEFAULT_TARGET, help="server host:port (default %(default)s)")
    parser.add_argument(
        "--user", default="cli", help=f"caller identity sent as {USER_METADATA_KEY} (default %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="deadline of each call in seconds (default %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="services and methods the server offers")
    call = commands.add_parser("call", help="send one request as JSON, print the response as JSON")
    call.add_argument("method", help="Service/Method, e.g. crm.customer.v1.CustomerService/GetCustomer")
    call.add_argument("request", nargs="?", default="{}", help='request as JSON (default {}); "-" reads stdin')
    get = commands.add_parser("get", help="a customer, line or consent state by resource name")
    get.add_argument("name", help="e.g. customers/123 or customers/123/subscriptions/456")
    search = commands.add_parser("search", help="customers by phone number or name")
    search.add_argument("text", help='a phone number ("+998 90 123-45-67") or part of a name ("nguyen")')
    search.add_argument("--phone-region", default="", help="country of a number written without country code")
    return parser.parse_args(argv)


def _method_and_request(arguments: argparse.Namespace) -> tuple[str, str]:
    if arguments.command == "call":
        request = sys.stdin.read() if arguments.request == "-" else arguments.request
        return arguments.method, request
    if arguments.command == "get":
        method = next((method for pattern, method in _GET_METHODS if pattern.match(arguments.name)), None)
        if method is None:
            raise UsageError(f"not a customer, line or consent state name: {arguments.name!r}")
        return f"{CUSTOMER_SERVICE}/{method}", json.dumps({"name": arguments.name})
    if _PHONE_LIKE.match(arguments.text):
        criteria = {"phoneNumber": arguments.text, "phoneRegionCode": arguments.phone_region.upper()}
    else:
        criteria = {"nameQuery": arguments.text}
    return f"{CUSTOMER_SERVICE}/SearchCustomers", json.dumps(criteria, ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns the exit code (0 done, 1 the call failed, 2 bad usage)."""
    arguments = _parse_arguments(sys.argv[1:] if argv is None else argv)
    defaults = _CallDefaults(arguments.timeout, [(USER_METADATA_KEY, arguments.user)])
    with grpc.insecure_channel(arguments.target) as plain_channel:
        api = ReflectedApi(grpc.intercept_channel(plain_channel, defaults))
        try:
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
