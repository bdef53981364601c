"""Domain errors: plain exceptions that domain code raises and `chassis.status` maps to gRPC.

Each error carries a machine-readable `reason` (UPPER_SNAKE) that callers branch on, a message for
people, and optional metadata naming the resource or rule involved.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. `customer.individual.birth_date`) and what is wrong."""

    field: str
    description: str


@dataclass
class DomainError(Exception):
    """Base of every error a service reports to its callers."""

    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class InvalidArgument(DomainError):
    """The request is malformed; nothing was changed. Lists every offending field."""

    def __init__(
        self, violations: list[FieldViolation], reason: str = "INVALID_ARGUMENT", message: str = "invalid request"
    ) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(reason, summary or message)
        self.violations = violations


class NotFound(DomainError):
    """The named resource does not exist (or is not visible to the caller)."""


class AlreadyExists(DomainError):
    """A resource with the same unique key exists already."""


class FailedPrecondition(DomainError):
    """The request is well-formed but the resource's state does not allow it."""


class Aborted(DomainError):
    """A concurrent change won; re-read and retry (etag mismatch, serialization failure)."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


class Unauthenticated(DomainError):
    """The caller could not be identified."""


class ResourceExhausted(DomainError):
    """A quota or rate limit was hit; `retry_after_seconds` says when trying again can succeed."""

    def __init__(
        self, reason: str, message: str, metadata: dict[str, str] | None = None, *, retry_after_seconds: float = 0.0
    ) -> None:
        super().__init__(reason, message, metadata or {})
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DomainError):
    """A dependency is down; the call may be retried."""


class DeadlineExceeded(DomainError):
    """The work could not finish in the time it was given; it may be retried, with a longer deadline."""


def invalid_field(field_path: str, description: str) -> InvalidArgument:
    """An INVALID_ARGUMENT about a single field."""
    return InvalidArgument([FieldViolation(field_path, description)])


def not_found(resource_type: str, name: str) -> NotFound:
    """A NOT_FOUND for a resource of a type, e.g. `not_found("customer", "customers/42")`."""
    return NotFound(
        f"{resource_type.upper()}_NOT_FOUND",
        f"{resource_type} {name} does not exist",
        {"resource_type": resource_type, "resource_name": name},
    )


def etag_mismatch(name: str) -> Aborted:
    """An ABORTED for an update or delete made against a stale version."""
    return Aborted("ETAG_MISMATCH", f"{name} changed since it was read; read it again", {"resource_name": name})


class Violations:
    """Collects field violations so that one error names every bad field at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field_path: str, description: str) -> None:
        """Records one bad field."""
        self.items.append(FieldViolation(field_path, description))

    def raise_if_any(self) -> None:
        """Raises InvalidArgument listing every recorded violation, if there is one."""
        if self.items:
            raise InvalidArgument(list(self.items))
