"""Plan changes and the consent they need: a line's plan changes only with the customer's recorded
acceptance of that very change (who, through which channel, when, and what), given by the customer
in self-service or recorded by an agent; the history keeps the evidence and every refusal."""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chassis.caller import Caller
from chassis.errors import FailedPrecondition, PermissionDenied, etag_mismatch, invalid_field
from services.offers.catalog import Offering, PriceModel
from services.offers.money import Money


class AcceptorKind(StrEnum):
    """Who gave an acceptance."""

    CUSTOMER = "CUSTOMER"
    AGENT_FOR_CUSTOMER = "AGENT_FOR_CUSTOMER"


class Origin(StrEnum):
    """Why a change was started."""

    REQUEST = "REQUEST"
    RECOMMENDATION = "RECOMMENDATION"
    RETIREMENT = "RETIREMENT"


class State(StrEnum):
    """Where a change stands."""

    PROPOSED = "PROPOSED"
    ACCEPTED = "ACCEPTED"
    APPLIED = "APPLIED"
    REFUSED = "REFUSED"
    DECLINED = "DECLINED"


# Which caller kind may give which acceptance: a customer for themselves, an employee for a customer.
_ACCEPTING_CALLERS = {AcceptorKind.CUSTOMER: "customer", AcceptorKind.AGENT_FOR_CUSTOMER: "employee"}


@dataclass(frozen=True)
class Acceptance:
    """The customer's consent to one change."""

    acceptor_kind: AcceptorKind
    channel: str
    accepted_by: str
    accept_time: datetime
    statement: str


@dataclass(frozen=True)
class PlanChange:
    """A change of a line's plan from proposal or request to the customer service's answer."""

    id: uuid.UUID
    customer_id: uuid.UUID
    subscription_id: uuid.UUID
    from_plan: str
    to_plan: str
    to_plan_version: int
    to_plan_price: Money
    origin: Origin
    state: State
    create_time: datetime
    recommendation_id: uuid.UUID | None = None
    acceptance: Acceptance | None = None
    decline_note: str = ""
    refusal_reason: str = ""
    refusal_message: str = ""
    settle_time: datetime | None = None
    version: int = 1
    update_etag: str = ""
    """The line's etag the accepted change's tariff update is sent with; empty until it is first sent."""


@dataclass(frozen=True)
class AcceptanceRequest:
    """What a caller sends as acceptance: who gives it and where."""

    acceptor_kind: AcceptorKind | None
    channel: str


def consent_required(subject: str) -> FailedPrecondition:
    """The refusal of a plan change without the customer's acceptance."""
    return FailedPrecondition(
        "CONSENT_REQUIRED",
        f"{subject} needs the customer's recorded acceptance: who accepted and through which channel",
        {"resource_name": subject},
    )


def accepted_by(
    request: AcceptanceRequest | None, caller: Caller, statement: str, now: datetime, subject: str
) -> Acceptance:
    """The acceptance `caller` records now; CONSENT_REQUIRED without one, PERMISSION_DENIED when the
    caller may not give that kind (a customer accepts for themselves, an employee for a customer)."""
    if request is None or request.acceptor_kind is None:
        raise consent_required(subject)
    if not request.channel:
        raise invalid_field("acceptance.channel", "is required: where the customer gave the acceptance")
    if caller.kind != _ACCEPTING_CALLERS[request.acceptor_kind]:
        raise PermissionDenied(
            "ACCEPTOR_NOT_CALLER",
            f"a {caller.kind} caller cannot record an acceptance given as {request.acceptor_kind.value}",
            {"caller_kind": caller.kind},
        )
    return Acceptance(request.acceptor_kind, request.channel, caller.subject, now, statement)


def acceptance_statement(from_plan: str, to: Offering) -> str:
    """What the customer accepts, in the words recorded with the acceptance."""
    return (
        f"Change of the line's plan from {from_plan} to {to.display_name} ({to.name}, version {to.version}) "
        f"at {to.price.words()} {_per(to)}"
    )


def accepted(change: PlanChange, acceptance: Acceptance, expected_version: int | None) -> PlanChange:
    """A proposed change with the customer's acceptance, ready to apply."""
    _ensure_proposed(change, expected_version)
    return replace(change, state=State.ACCEPTED, acceptance=acceptance, version=change.version + 1)


def declined(change: PlanChange, note: str, expected_version: int | None) -> PlanChange:
    """A proposed change the customer declined; nothing changes."""
    _ensure_proposed(change, expected_version)
    return replace(change, state=State.DECLINED, decline_note=note, version=change.version + 1)


def _ensure_proposed(change: PlanChange, expected_version: int | None) -> None:
    name = f"planChanges/{change.id}"
    if expected_version is not None and expected_version != change.version:
        raise etag_mismatch(name)
    if change.state is not State.PROPOSED:
        raise FailedPrecondition(
            "PLAN_CHANGE_SETTLED", f"{name} is {change.state.value}, no longer proposed", {"resource_name": name}
        )


def _per(offering: Offering) -> str:
    return {
        PriceModel.MONTHLY: "a month",
        PriceModel.PER_CALENDAR_DAY: "a day",
        PriceModel.PER_DAY_OF_USE: "a day of use",
    }[offering.price_model]
