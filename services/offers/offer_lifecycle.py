"""The lifecycle of an offer put to a customer: presented on a channel at a time, then accepted,
declined or, unanswered past its validity, expired; and what its KPIs are made of."""

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from chassis.errors import FailedPrecondition, etag_mismatch
from services.offers.action_rules import ActionKind


class OfferState(StrEnum):
    """Where a presented offer stands."""

    PRESENTED = "PRESENTED"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class Presentation:
    """An action put to a customer and what became of it."""

    id: uuid.UUID
    customer_id: uuid.UUID | None
    """None once the customer was erased: the presentation still counts in the KPIs."""
    rule_id: str
    kind: ActionKind
    offering: str
    channel: str
    segments: tuple[str, ...]
    priority: float
    presented_by: str
    present_time: datetime
    expire_time: datetime
    state: OfferState = OfferState.PRESENTED
    decided_by: str = ""
    decide_channel: str = ""
    decide_time: datetime | None = None
    version: int = 1

    @property
    def name(self) -> str:
        """`offerPresentations/{presentation}`."""
        return f"offerPresentations/{self.id}"


def answered(
    presentation: Presentation,
    state: OfferState,
    *,
    by: str,
    channel: str,
    now: datetime,
    expected_version: int | None,
) -> Presentation:
    """The presentation accepted or declined by `by` through `channel` at `now`."""
    if expected_version is not None and expected_version != presentation.version:
        raise etag_mismatch(presentation.name)
    if presentation.state is not OfferState.PRESENTED:
        raise FailedPrecondition(
            "OFFER_SETTLED",
            f"{presentation.name} was {presentation.state.value.lower()} already",
            {"resource_name": presentation.name, "state": presentation.state.value},
        )
    if now >= presentation.expire_time:
        raise FailedPrecondition(
            "OFFER_EXPIRED",
            f"{presentation.name} expired at {presentation.expire_time.isoformat()}; present it again",
            {"resource_name": presentation.name},
        )
    return replace(
        presentation,
        state=state,
        decided_by=by,
        decide_channel=channel,
        decide_time=now,
        version=presentation.version + 1,
    )


def rate(part: int, whole: int) -> float:
    """`part / whole`; 0 for no whole."""
    return part / whole if whole else 0.0


def retention_effect_words(accepted: tuple[int, int], declined: tuple[int, int]) -> str:
    """The retention effect in words, from (customers, churned) of those who accepted and declined."""
    if not accepted[0] and not declined[0]:
        return "no retention offer was answered in the period"
    return (
        f"churn within 90 days: {rate(accepted[1], accepted[0]):.1%} of {accepted[0]} customers after accepting a "
        f"retention offer vs {rate(declined[1], declined[0]):.1%} of {declined[0]} after declining"
    )
