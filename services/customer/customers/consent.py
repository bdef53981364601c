"""Consent per purpose (TMF644): what a decision needs, that only a granted purpose can be revoked,
and how the current state follows from the latest decision of each purpose."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from chassis.errors import FailedPrecondition, InvalidArgument, Violations
from services.customer.customers.profile import Channel


class ConsentPurpose(StrEnum):
    """What a consent is asked for."""

    MARKETING = "MARKETING"
    PROFILING = "PROFILING"
    PARTNER_SHARING = "PARTNER_SHARING"


class ConsentDecision(StrEnum):
    """A decision on one purpose."""

    GRANTED = "GRANTED"
    DENIED = "DENIED"
    REVOKED = "REVOKED"


@dataclass(frozen=True)
class ConsentRecord:
    """One decision in a customer's consent history."""

    id: int
    customer_id: uuid.UUID
    purpose: ConsentPurpose
    decision: ConsentDecision
    channel: Channel
    record_time: datetime
    recorder: str


@dataclass(frozen=True)
class ConsentRequest:
    """A decision to record."""

    purpose: ConsentPurpose | None
    decision: ConsentDecision | None
    channel: Channel | None


@dataclass(frozen=True)
class CheckedConsent:
    """A decision that passed the checks, ready to be recorded."""

    purpose: ConsentPurpose
    decision: ConsentDecision
    channel: Channel


@dataclass(frozen=True)
class PurposeState:
    """The current state of one purpose."""

    purpose: ConsentPurpose
    latest: ConsentRecord | None = None

    @property
    def permitted(self) -> bool:
        """Whether the operator may act for this purpose now."""
        return self.latest is not None and self.latest.decision is ConsentDecision.GRANTED


@dataclass(frozen=True)
class ConsentState:
    """The current state of every purpose, derived from the history."""

    purposes: list[PurposeState] = field(default_factory=list)


def check_consent_request(request: ConsentRequest, current: PurposeState | None) -> CheckedConsent:
    """A decision needs a purpose, a decision and a channel; only a granted purpose can be revoked."""
    violations = Violations()
    if request.purpose is None:
        violations.add("purpose", "is required")
    if request.decision is None:
        violations.add("decision", "is required")
    if request.channel is None:
        violations.add("channel", "is required")
    if request.purpose is None or request.decision is None or request.channel is None:
        raise InvalidArgument(violations.items)
    checked = CheckedConsent(request.purpose, request.decision, request.channel)
    if checked.decision is ConsentDecision.REVOKED and (current is None or not current.permitted):
        raise FailedPrecondition(
            "CONSENT_NOT_GRANTED",
            f"{checked.purpose} is not granted, so there is nothing to revoke",
            {"purpose": str(checked.purpose)},
        )
    return checked


def consent_state(latest_records: Iterable[ConsentRecord]) -> ConsentState:
    """One entry per purpose in purpose order, from the latest record of each purpose."""
    latest = {record.purpose: record for record in latest_records}
    return ConsentState([PurposeState(purpose, latest.get(purpose)) for purpose in ConsentPurpose])
