"""Who a caller is and what they may call: the checks that sit in front of every forwarded method.

Authentication here is the development scheme (a caller names itself in `x-crm-user`); a real
scheme (tokens for employees and customers, client certificates for retail chains) replaces
`authenticate` without touching the forwarder. Only allow-listed client metadata is passed on, so
caller-identity keys that a client sends itself never reach a backend.
"""

from collections.abc import Sequence

from chassis.caller import Caller

USER_KEY = "x-crm-user"
# Client metadata a backend may see; everything else stays at the gateway.
FORWARDED_KEYS = frozenset({"accept-language"})
Metadata = Sequence[tuple[str, str | bytes]]


def authenticate(metadata: Metadata) -> Caller:
    """The caller behind a request's metadata."""
    for key, value in metadata:
        if key == USER_KEY and isinstance(value, str) and value.strip():
            return Caller(subject=value.strip(), kind="employee")
    return Caller(subject="anonymous", kind="anonymous")


def authorize(caller: Caller, method: str) -> None:
    """Raises PermissionDenied when `caller` may not call `method`; every public method is open
    to every caller until roles and tenants are configured."""


def forwardable_metadata(metadata: Metadata, caller: Caller) -> list[tuple[str, str | bytes]]:
    """What the backend receives: the gateway's word on the caller, nothing a client claimed."""
    kept = [(key, value) for key, value in metadata if key in FORWARDED_KEYS]
    return [*kept, *caller.to_metadata()]
