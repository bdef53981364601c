"""The access policy as data: read from `gateway/policy.toml` and checked against the contract at start.

A mistake in the file (an unknown method, role, key or request field, a method exposed but not
listed) stops the gateway with the offending line, so a policy that does not say what happens to
every method never serves.
"""

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

from gateway.identity import EMPLOYEE_ROLES


class PolicyError(Exception):
    """The policy file is wrong; the message names the file, the line and what is wrong."""


class RetailerCheck(StrEnum):
    """A further check on a retail partner's call, beyond the customer being theirs."""

    NONE = ""
    PHONE_LOOKUP = "phone-lookup"
    """A search by phone number only; the customers found count as presented at the partner's counter."""


@dataclass(frozen=True)
class Limit:
    """A request whose `field` exceeds `above` needs one of `roles`."""

    field: str
    above: int
    roles: frozenset[str]


@dataclass(frozen=True)
class MethodRule:
    """Who may call one method, for what, and what they may change."""

    method: str
    """The full gRPC path, `/crm.loyalty.v1.LoyaltyService/EarnPoints`."""
    employee_roles: frozenset[str]
    customers: bool
    retailers: bool
    resource_field: str
    """The request field holding the resource name the call is about; empty when none."""
    retailer_check: RetailerCheck
    partner_field: str
    """The request field that must name the calling partner (its shop, the customer it onboards); empty when none."""
    customer_writable: frozenset[str]
    limit: Limit | None
    line: int
    """Where the rule is written, for messages."""

    @property
    def mutates(self) -> bool:
        """Whether the method changes something (audited whatever its outcome)."""
        name = self.method.rsplit("/", 1)[-1]
        return not name.startswith(("Get", "List", "Search"))


@dataclass(frozen=True)
class Policy:
    """The whole policy."""

    methods: Mapping[str, MethodRule]
    """Rules by full gRPC path."""
    customer_visible_segments: tuple[str, ...]
    """Segment id patterns a customer sees of their own segments (`*` a wildcard)."""
    retailer_hidden_fields: frozenset[str]
    """Full field names cleared from what a partner receives."""
    retailer_masked_phone_fields: frozenset[str]
    """Full field names of phone numbers a partner sees partly hidden."""

    def segment_visible_to_customer(self, segment_id: str) -> bool:
        """Whether a customer sees their membership of `segment_id`."""
        return any(_wildcard(pattern).fullmatch(segment_id) for pattern in self.customer_visible_segments)


_METHOD_KEYS = {
    "employees",
    "customers",
    "retailers",
    "resource",
    "retailer_check",
    "partner_field",
    "customer_writable",
    "limit",
}
_TOP_KEYS = {"customers", "retailers", "methods"}


def load_policy(path: Path, methods: Mapping[str, MethodDescriptor], messages: Mapping[str, Descriptor]) -> Policy:
    """The policy in `path`, checked against the exposed `methods` (by full gRPC path) and the
    contract's `messages` (by full name); PolicyError naming the line when anything is wrong."""
    text = path.read_text()
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{path}: {error}") from None
    where = _Locator(path, text)
    for key in document:
        if key not in _TOP_KEYS:
            raise where.error(key, f"unknown section [{key}]; expected one of {sorted(_TOP_KEYS)}")
    rules = {}
    for name, entry in document.get("methods", {}).items():
        path_name = f"/{name}"
        if path_name not in methods:
            raise where.error(f'[methods."{name}"]', f"{name} is not a method the gateway exposes")
        rules[path_name] = _rule(name, entry, methods[path_name], where)
    missing = sorted(set(methods) - set(rules))
    if missing:
        raise PolicyError(f"{path}: exposed methods without an entry: {', '.join(m.lstrip('/') for m in missing)}")
    customers, retailers = document.get("customers", {}), document.get("retailers", {})
    hidden = frozenset(retailers.get("hidden_fields", []))
    masked = frozenset(retailers.get("masked_phone_fields", []))
    for field_name in sorted(hidden | masked):
        if _field(field_name, messages) is None:
            raise where.error(field_name, f"{field_name} is not a field of the contract")
    for field_name in sorted(masked):
        found = _field(field_name, messages)
        if found is not None and found.type != FieldDescriptor.TYPE_STRING:
            raise where.error(field_name, f"{field_name} is not a text field; only phone numbers as text are masked")
    return Policy(
        methods=rules,
        customer_visible_segments=tuple(customers.get("visible_segments", [])),
        retailer_hidden_fields=hidden,
        retailer_masked_phone_fields=masked,
    )


def _rule(name: str, entry: Mapping[str, object], method: MethodDescriptor, where: "_Locator") -> MethodRule:
    header = f'[methods."{name}"]'
    unknown = set(entry) - _METHOD_KEYS
    if unknown:
        raise where.error(header, f"{name}: unknown keys {sorted(unknown)}; expected some of {sorted(_METHOD_KEYS)}")
    roles = _strings(entry.get("employees", []), f"{name}: employees", header, where)
    if not roles <= EMPLOYEE_ROLES:
        raise where.error(header, f"{name}: unknown roles {sorted(roles - EMPLOYEE_ROLES)}")
    resource, partner_field = str(entry.get("resource", "")), str(entry.get("partner_field", ""))
    for field_path in (resource, partner_field):
        if field_path and not _has_text_field(method.input_type, field_path):
            raise where.error(header, f"{name}: {method.input_type.name} has no text field {field_path!r}")
    try:
        check = RetailerCheck(str(entry.get("retailer_check", "")))
    except ValueError:
        raise where.error(header, f"{name}: retailer_check must be one of {[c.value for c in RetailerCheck]}") from None
    customers, retailers = entry.get("customers", False), entry.get("retailers", False)
    if not isinstance(customers, bool) or not isinstance(retailers, bool):
        raise where.error(header, f"{name}: customers and retailers are true or false")
    if (customers or retailers) and not resource and method.name.startswith(("Update", "Delete")):
        raise where.error(header, f"{name}: a change open to customers or partners must name its resource")
    return MethodRule(
        method=f"/{name}",
        employee_roles=roles,
        customers=customers,
        retailers=retailers,
        resource_field=resource,
        retailer_check=check,
        partner_field=partner_field,
        customer_writable=_strings(entry.get("customer_writable", []), f"{name}: customer_writable", header, where),
        limit=_limit(name, entry.get("limit"), method, header, where),
        line=where.line_of(header),
    )


def _limit(name: str, raw: object, method: MethodDescriptor, header: str, where: "_Locator") -> Limit | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"field", "above", "roles"}:
        raise where.error(header, f"{name}: limit is {{ field, above, roles }}")
    field_name, above = str(raw["field"]), raw["above"]
    found = method.input_type.fields_by_name.get(field_name)
    if found is None or found.cpp_type not in (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64):
        raise where.error(header, f"{name}: limit field {field_name!r} is not a whole-number field of the request")
    if not isinstance(above, int):
        raise where.error(header, f"{name}: limit above must be a whole number")
    roles = _strings(raw["roles"], f"{name}: limit roles", header, where)
    if not roles <= EMPLOYEE_ROLES:
        raise where.error(header, f"{name}: unknown roles {sorted(roles - EMPLOYEE_ROLES)} in limit")
    return Limit(field=field_name, above=above, roles=roles)


def _strings(raw: object, what: str, header: str, where: "_Locator") -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise where.error(header, f"{what} must be a list of names")
    return frozenset(raw)


def _has_text_field(message: Descriptor, path: str) -> bool:
    *parents, last = path.split(".")
    for part in parents:
        found = message.fields_by_name.get(part)
        if found is None or found.message_type is None:
            return False
        message = found.message_type
    leaf = message.fields_by_name.get(last)
    return leaf is not None and leaf.type == FieldDescriptor.TYPE_STRING


def _field(full_name: str, messages: Mapping[str, Descriptor]) -> FieldDescriptor | None:
    message_name, _, field_name = full_name.rpartition(".")
    message = messages.get(message_name)
    return None if message is None else message.fields_by_name.get(field_name)


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


class _Locator:
    """Finds where in the file a section or value is written, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self._path = path
        self._lines = text.splitlines()

    def line_of(self, needle: str) -> int:
        for number, line in enumerate(self._lines, start=1):
            if needle in line:
                return number
        return 0

    def error(self, needle: str, problem: str) -> PolicyError:
        line = self.line_of(needle)
        return PolicyError(f"{self._path}:{line}: {problem}" if line else f"{self._path}: {problem}")
