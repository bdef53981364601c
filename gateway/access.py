"""The gateway's guard: every call is authenticated, rate limited and authorised here, once, before
any handler runs (forwarded or the gateway's own), and every mutation and denial is audited.

Order: health is open (probes); anything else needs TLS and a proven caller (UNAUTHENTICATED),
then its caller's rate (RESOURCE_EXHAUSTED with RetryInfo), then the policy: the method for the
caller's kind and roles (function level), the resource for its owner (object level: a customer's
own, a partner's customers) and the fields (property level: what a customer may change, what a
partner sees). Permission is decided before existence: a resource that is not the caller's is
PERMISSION_DENIED whether or not it exists.
"""

import datetime
from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from opentelemetry import trace

from chassis.caller import ANONYMOUS, Caller, set_current_caller
from chassis.clock import Clock
from chassis.errors import DomainError, FieldViolation, InvalidArgument, PermissionDenied, ResourceExhausted
from chassis.interceptors import parsed_request
from chassis.status import grpc_code
from gateway.audit import AuditRecord, AuditTrail
from gateway.identity import Authenticator, Credentials
from gateway.owners import PartnerCustomers, ResourceOwners
from gateway.policy import MethodRule, Policy, RetailerCheck
from gateway.rate_limits import RateLimits
from gateway.views import CustomerView, RetailerView, View

# Client metadata a backend may see; everything else (any identity a client claims) stays here.
FORWARDED_KEYS = frozenset({"accept-language"})
HEALTH = "/grpc.health.v1.Health/"
REFLECTION = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")
_OWNED_COLLECTIONS = ("customers", "accounts")  # an account's id is its customer's
_PHONE_LOOKUP_FIELDS = frozenset({"phone_number", "phone_region_code", "page_size", "page_token"})

Context = grpc.aio.ServicerContext[object, object]
Metadata = Sequence[tuple[str, str | bytes]]


def forwardable_metadata(metadata: Metadata, caller: Caller) -> list[tuple[str, str | bytes]]:
    """What the backend receives: the gateway's word on the caller, nothing a client claimed."""
    kept = [(key, value) for key, value in metadata if key in FORWARDED_KEYS]
    return [*kept, *caller.to_metadata()]


class _OpenCall:
    """A call the policy does not follow (health, reflection)."""

    def respond(self, response: object) -> object:
        return response

    def finish(self, code: grpc.StatusCode) -> None:
        return None


_OPEN = _OpenCall()


class _AdmittedCall:
    """A call the policy admitted: its answer is shaped for the caller, a mutation audited."""

    def __init__(self, access: "Access", caller: Caller, rule: MethodRule, resource: str, view: View | None) -> None:
        self._access = access
        self._caller = caller
        self._rule = rule
        self._resource = resource
        self._view = view

    def respond(self, response: object) -> object:
        if self._view is None or not isinstance(response, bytes):
            return response
        answer = self._access.response_message(self._rule.method, response)
        if self._rule.retailer_check is RetailerCheck.PHONE_LOOKUP and self._caller.kind == "retailer":
            self._access.presented_at_counter(self._caller, answer)
        self._view(answer)
        return answer.SerializeToString()

    def finish(self, code: grpc.StatusCode) -> None:
        if self._rule.mutates:
            self._access.audit(self._caller, self._rule.method, self._resource, code.name, "")


class Access:
    """The guard in front of every method of the gateway."""

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        policy: Policy,
        methods: Mapping[str, MethodDescriptor],
        partner_customers: PartnerCustomers,
        resource_owners: ResourceOwners,
        rate_limits: RateLimits,
        audit_trail: AuditTrail,
        clock: Clock,
    ) -> None:
        self._authenticator = authenticator
        self._policy = policy
        self._partner_customers = partner_customers
        self._resource_owners = resource_owners
        self._rate_limits = rate_limits
        self._audit_trail = audit_trail
        self._clock = clock
        self._requests = {path: message_factory.GetMessageClass(m.input_type) for path, m in methods.items()}
        self._responses = {path: message_factory.GetMessageClass(m.output_type) for path, m in methods.items()}
        retailer_view = RetailerView(policy)
        self._retailer_view = retailer_view.apply
        self._customer_view = CustomerView(policy).apply
        # Only answers that can hold something to hide are parsed and written again; the rest pass as bytes.
        self._shaped_for_retailers = {path for path, m in methods.items() if retailer_view.concerns(m.output_type)}
        self._shaped_for_customers = {
            path for path, m in methods.items() if m.output_type.full_name in CustomerView.ANSWERS
        }

    async def admit(self, method: str, request: bytes | None, context: Context) -> _OpenCall | _AdmittedCall:
        """The admitted call; raises UNAUTHENTICATED, RESOURCE_EXHAUSTED or PERMISSION_DENIED (audited)."""
        if method.startswith(HEALTH):
            return _OPEN
        caller, resource = ANONYMOUS, ""
        try:
            caller = self._authenticate(context)
            set_current_caller(caller)
            wait = self._rate_limits.wait_seconds(caller)
            if wait > 0:
                raise ResourceExhausted(
                    "RATE_LIMITED",
                    f"too many calls from this {caller.kind}; retry in {wait:.2f}s",
                    {"retry_after_seconds": f"{wait:.3f}"},
                    retry_after_seconds=wait,
                )
            if method.startswith(REFLECTION):
                return self._reflection(caller)
            rule = self._policy.methods.get(method)
            if rule is None:
                raise PermissionDenied("METHOD_NOT_IN_POLICY", f"{method} is not open to anyone", {"method": method})
            message = (
                self._decoded(method, request) if request is not None and self._needs_request(caller, rule) else None
            )
            resource = _text_at(message, rule.resource_field) if message is not None else ""
            view = await self._authorize(caller, rule, message, resource)
            return _AdmittedCall(self, caller, rule, resource, view)
        except DomainError as refusal:
            self.audit(caller, method, resource, grpc_code(refusal).name, refusal.reason)
            raise

    def response_message(self, method: str, response: bytes) -> Message:
        """A backend's answer to `method`, parsed (only answers that are shaped for a caller are)."""
        return self._responses[method].FromString(response)

    def audit(self, caller: Caller, method: str, resource: str, outcome: str, reason: str) -> None:
        """Records one mutation or denial: who, what, the outcome, the trace; nothing personal."""
        span = trace.get_current_span().get_span_context()
        self._audit_trail.record(
            AuditRecord(
                time=self._clock.now().astimezone(datetime.UTC),
                subject=caller.subject if caller is not ANONYMOUS else "",
                caller_kind=caller.kind,
                roles=caller.roles,
                tenant=caller.tenant,
                method=method,
                resource=resource,
                outcome=outcome,
                reason=reason,
                trace_id=f"{span.trace_id:032x}" if span.is_valid else "",
            )
        )

    def _authenticate(self, context: Context) -> Caller:
        auth_context = context.auth_context()
        if auth_context.get("transport_security_type") != [b"ssl"]:
            # The plaintext probe port serves health only.
            raise PermissionDenied("TLS_REQUIRED", "this address serves health checks only; call the TLS address")
        return self._authenticator.caller(Credentials(tuple(context.invocation_metadata() or ()), auth_context))

    def _reflection(self, caller: Caller) -> _OpenCall:
        if caller.kind == "employee" or self._authenticator.development_identity:
            return _OPEN
        raise PermissionDenied("REFLECTION_FOR_EMPLOYEES", "server reflection is open to employees only")

    def _needs_request(self, caller: Caller, rule: MethodRule) -> bool:
        # Employees' reads pass as bytes; everything else is read for its owner, limits or the audit.
        return caller.kind != "employee" or rule.mutates or rule.limit is not None

    def _decoded(self, method: str, request: bytes) -> Message:
        decoded: Message = parsed_request(self._requests[method].FromString, request, method)
        return decoded

    async def _authorize(self, caller: Caller, rule: MethodRule, request: Message | None, resource: str) -> View | None:
        if caller.kind == "employee":
            self._authorize_employee(caller, rule, request)
            return None
        if caller.kind == "customer" and rule.customers:
            if rule.resource_field and await self._owner(resource) != caller.subject.removeprefix("customers/"):
                raise _not_yours(rule)
            if request is not None and rule.customer_writable:
                _require_writable(rule, request)
            return self._customer_view if rule.method in self._shaped_for_customers else None
        if caller.kind == "retailer" and rule.retailers:
            await self._authorize_retailer(caller, rule, request, resource)
            # A phone lookup's answer is read in any case: the customers found are present at the counter.
            shaped = rule.method in self._shaped_for_retailers or rule.retailer_check is RetailerCheck.PHONE_LOOKUP
            return self._retailer_view if shaped else None
        raise _method_refused(caller, rule)

    def _authorize_employee(self, caller: Caller, rule: MethodRule, request: Message | None) -> None:
        if not rule.employee_roles.intersection(caller.roles):
            raise _method_refused(caller, rule)
        limit = rule.limit
        if limit is not None and request is not None and not limit.roles.intersection(caller.roles):
            value = getattr(request, limit.field)
            if value > limit.above:
                raise PermissionDenied(
                    "LIMIT_NEEDS_ROLE",
                    f"{limit.field} above {limit.above} needs the role {' or '.join(sorted(limit.roles))}",
                    {"field": limit.field, "limit": str(limit.above)},
                )

    async def _authorize_retailer(
        self, caller: Caller, rule: MethodRule, request: Message | None, resource: str
    ) -> None:
        if rule.retailer_check is RetailerCheck.PHONE_LOOKUP:
            _require_phone_lookup(request)
            return
        if rule.partner_field and request is not None:
            _require_partner_named(caller, rule.partner_field, _text_at(request, rule.partner_field))
        if rule.resource_field:
            owner = await self._owner(resource)
            if owner is None or not await self._partner_customers.may_reach(caller.tenant, owner):
                raise _not_yours(rule)

    async def _owner(self, name: str) -> str | None:
        """The customer id a resource name belongs to: in its name (`customers/{id}/...`,
        `accounts/{id}/...`), or asked of the service holding it (`complaints/{id}`, `planChanges/{id}`)."""
        collection, _, rest = name.partition("/")
        key = rest.partition("/")[0]
        if not key:
            return None
        if collection in _OWNED_COLLECTIONS:
            return key
        if self._resource_owners.knows(collection):
            return await self._resource_owners.customer_of(collection, key)
        return None

    def presented_at_counter(self, caller: Caller, response: Message) -> None:
        """Customers a partner found by phone count as present at its counter for a while."""
        for customer in getattr(response, "customers", ()):
            collection, _, key = customer.name.partition("/")
            if collection == "customers" and key:
                self._partner_customers.presented(caller.tenant, key)


def _require_writable(rule: MethodRule, request: Message) -> None:
    mask = getattr(request, "update_mask", None)
    paths = list(mask.paths) if isinstance(mask, FieldMask) else []
    refused = sorted(path for path in paths if path not in rule.customer_writable) or ([] if paths else ["*"])
    if refused:
        raise PermissionDenied(
            "FIELD_NOT_WRITABLE",
            f"a customer may change only {', '.join(sorted(rule.customer_writable))}; not {', '.join(refused)}",
            {"fields": ",".join(refused)},
        )


def _require_phone_lookup(request: Message | None) -> None:
    if request is None:
        return
    others = sorted(f.name for f, _ in request.ListFields() if f.name not in _PHONE_LOOKUP_FIELDS)
    if others or not getattr(request, "phone_number", "").strip():
        raise PermissionDenied(
            "PHONE_LOOKUP_ONLY",
            "a partner finds a customer by phone number only",
            {"fields": ",".join(others) or "phone_number"},
        )


def _require_partner_named(caller: Caller, field_path: str, named: str) -> None:
    if not named.strip():
        raise InvalidArgument([FieldViolation(field_path, f"a partner acts as itself here: {caller.tenant!r}")])
    if named.strip() != caller.tenant:
        raise PermissionDenied("OTHER_PARTNER", "a partner acts for itself only", {"field": field_path})


def _text_at(message: Message, path: str) -> str:
    if not path:
        return ""
    value: object = message
    for part in path.split("."):
        value = getattr(value, part)
    return value if isinstance(value, str) else ""


def _method_refused(caller: Caller, rule: MethodRule) -> PermissionDenied:
    who = (
        f"an employee with roles {', '.join(caller.roles) or 'none'}"
        if caller.kind == "employee"
        else f"a {caller.kind}"
    )
    method = rule.method.lstrip("/")
    return PermissionDenied("METHOD_NOT_ALLOWED", f"{who} may not call {method}", {"method": method})


def _not_yours(rule: MethodRule) -> PermissionDenied:
    # The same answer whether the resource exists or not.
    return PermissionDenied(
        "NOT_YOUR_RESOURCE",
        f"{rule.resource_field} names a resource this caller may not reach",
        {"field": rule.resource_field},
    )
