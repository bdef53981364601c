"""Who is calling: the identity the gateway puts in request metadata, available to handlers.

Services trust these keys because only the gateway can reach them; the gateway strips any that a
client sends itself (see `CALLER_METADATA_PREFIX`).
"""

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

CALLER_METADATA_PREFIX = "x-crm-caller-"
SUBJECT_KEY = "x-crm-caller-subject"
KIND_KEY = "x-crm-caller-kind"
TENANT_KEY = "x-crm-caller-tenant"
ROLES_KEY = "x-crm-caller-roles"


@dataclass(frozen=True)
class Caller:
    """The authenticated party behind a call."""

    subject: str
    """Stable id of the person or system, recorded as the actor of every change it makes."""
    kind: str
    """employee, retailer, customer or service."""
    tenant: str = ""
    """The retail chain a retailer caller belongs to; empty otherwise."""
    roles: tuple[str, ...] = ()
    """An employee's roles (agent, supervisor, ...); empty for other kinds."""

    def to_metadata(self) -> list[tuple[str, str]]:
        """The metadata entries that carry this caller to a backend."""
        entries = [(SUBJECT_KEY, self.subject), (KIND_KEY, self.kind)]
        if self.tenant:
            entries.append((TENANT_KEY, self.tenant))
        if self.roles:
            entries.append((ROLES_KEY, ",".join(self.roles)))
        return entries


ANONYMOUS = Caller(subject="anonymous", kind="anonymous")

_current: ContextVar[Caller] = ContextVar("caller", default=ANONYMOUS)


def caller_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> Caller:
    """Reads the caller keys from invocation metadata; anonymous when absent."""
    values = {key: value for key, value in metadata if key.startswith(CALLER_METADATA_PREFIX)}
    subject = values.get(SUBJECT_KEY)
    if not isinstance(subject, str) or not subject:
        return ANONYMOUS
    kind = values.get(KIND_KEY)
    tenant = values.get(TENANT_KEY)
    roles = values.get(ROLES_KEY)
    return Caller(
        subject=subject,
        kind=kind if isinstance(kind, str) and kind else "service",
        tenant=tenant if isinstance(tenant, str) else "",
        roles=tuple(role for role in roles.split(",") if role) if isinstance(roles, str) else (),
    )


def current_caller() -> Caller:
    """The caller of the call being served (anonymous outside a call)."""
    return _current.get()


def set_current_caller(caller: Caller) -> None:
    """Binds the caller for the rest of the current call's task."""
    _current.set(caller)
