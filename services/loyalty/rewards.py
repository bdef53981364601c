"""The rewards catalog's rules, plain Python: what a reward may be and who may redeem it when.

Bill discounts, data bundles and vouchers are self-service: redeemed in one step. Handsets and other
prizes are handed over at a partner shop that holds a piece: reserved at the counter, then
captured or released.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from chassis.errors import FailedPrecondition, PermissionDenied, Violations, invalid_field
from services.loyalty.ledger import MAX_REASON_LENGTH
from services.loyalty.program_rules import ID_PATTERN, Money

MAX_PRICE = 100_000_000
MAX_RESTOCK = 1_000_000
DEFAULT_HOLD = timedelta(minutes=30)
MIN_HOLD = timedelta(seconds=1)
MAX_HOLD = timedelta(days=7)
PARTNER_PATTERN_LENGTH = 64


class RewardKind(StrEnum):
    """What a reward is."""

    BILL_DISCOUNT = "BILL_DISCOUNT"
    DATA_BUNDLE = "DATA_BUNDLE"
    VOUCHER = "VOUCHER"
    HANDSET = "HANDSET"
    PRIZE = "PRIZE"


PARTNER_KINDS = frozenset({RewardKind.HANDSET, RewardKind.PRIZE})


class ReservationState(StrEnum):
    """Where a reservation stands."""

    HELD = "HELD"
    CAPTURED = "CAPTURED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True)
class PartnerStock:
    """Pieces of a reward at one partner."""

    partner: str
    available: int
    reserved: int


@dataclass(frozen=True)
class Reward:
    """An item of the catalog."""

    id: str
    display_name: str
    kind: RewardKind
    points_price: int
    value: Money | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    eligible_tiers: tuple[str, ...] = ()
    eligible_segments: tuple[str, ...] = ()
    create_time: datetime | None = None
    stock: tuple[PartnerStock, ...] = ()

    @property
    def at_partner(self) -> bool:
        """Whether it is handed over at a partner shop (reserved, then captured)."""
        return self.kind in PARTNER_KINDS


@dataclass(frozen=True)
class Reservation:
    """Points and one piece held at a partner shop."""

    account_id: uuid.UUID
    id: uuid.UUID
    reward: str
    partner: str
    points: int
    state: ReservationState
    expire_time: datetime
    create_time: datetime
    reserve_entry: int
    settle_time: datetime | None = None
    settle_entry: int | None = None


def check_reward(reward: Reward, known_tiers: set[str]) -> None:
    """Raises INVALID_ARGUMENT naming every unusable field of a new reward."""
    violations = Violations()
    if not ID_PATTERN.match(reward.id):
        violations.add("reward_id", "must be lower-case letters, digits and dashes, starting with a letter")
    if not reward.display_name.strip():
        violations.add("reward.display_name", "is required")
    if not 0 < reward.points_price <= MAX_PRICE:
        violations.add("reward.points_price", f"must be from 1 to {MAX_PRICE}")
    if reward.start_time and reward.end_time and reward.end_time <= reward.start_time:
        violations.add("reward.end_time", "must be after start_time")
    for index, tier in enumerate(reward.eligible_tiers):
        if tier not in known_tiers:
            violations.add(f"reward.eligible_tiers[{index}]", f"{tier!r} is not a tier of the program")
    for index, segment in enumerate(reward.eligible_segments):
        if not segment.startswith("segments/") or len(segment) <= len("segments/"):
            violations.add(f"reward.eligible_segments[{index}]", "must be a segment name, segments/{segment}")
    if reward.value is not None and reward.value.amount < 0:
        violations.add("reward.value", "must not be negative")
    violations.raise_if_any()


def check_partner(partner: str, field: str = "partner") -> str:
    """The partner id, trimmed; INVALID_ARGUMENT when empty or too long."""
    partner = partner.strip()
    violations = Violations()
    if not partner:
        violations.add(field, "is required")
    elif len(partner) > PARTNER_PATTERN_LENGTH:
        violations.add(field, f"must be at most {PARTNER_PATTERN_LENGTH} characters")
    violations.raise_if_any()
    return partner


def check_restock(reward: Reward, quantity: int) -> None:
    """Only prizes handed over at partner shops have stock; quantities are positive."""
    violations = Violations()
    if not 0 < quantity <= MAX_RESTOCK:
        violations.add("quantity", f"must be from 1 to {MAX_RESTOCK}")
    violations.raise_if_any()
    if not reward.at_partner:
        raise FailedPrecondition(
            "NOT_STOCKED", f"a {reward.kind.value.lower()} reward has no partner stock", {"reward": reward.id}
        )


def hold_duration(requested: timedelta | None) -> timedelta:
    """How long a reservation holds; INVALID_ARGUMENT outside 1 second to 7 days."""
    if requested is None:
        return DEFAULT_HOLD
    if not MIN_HOLD <= requested <= MAX_HOLD:
        violations = Violations()
        violations.add("hold_duration", "must be from 1 second to 7 days")
        violations.raise_if_any()
    return requested


def release_reason(reason: str) -> str:
    """Why a reservation is released, as its entry tells it ("released at the shop" unless given);
    INVALID_ARGUMENT when too long."""
    if len(reason) > MAX_REASON_LENGTH:
        raise invalid_field("reason", f"must be at most {MAX_REASON_LENGTH} characters")
    return reason.strip() or "released at the shop"


def ineligibility(reward: Reward, *, tier: str, segments: frozenset[str], now: datetime) -> str | None:
    """Why the customer may not redeem the reward now, or None when they may."""
    if reward.start_time and now < reward.start_time:
        return "REWARD_NOT_AVAILABLE"
    if reward.end_time and now >= reward.end_time:
        return "REWARD_NOT_AVAILABLE"
    if reward.eligible_tiers and tier not in reward.eligible_tiers:
        return "NOT_ELIGIBLE"
    if reward.eligible_segments and not segments.intersection(reward.eligible_segments):
        return "NOT_ELIGIBLE"
    return None


def require_eligible(reward: Reward, *, tier: str, segments: frozenset[str], now: datetime) -> None:
    """FAILED_PRECONDITION with the reason when the customer may not redeem the reward now."""
    reason = ineligibility(reward, tier=tier, segments=segments, now=now)
    if reason == "REWARD_NOT_AVAILABLE":
        raise FailedPrecondition(reason, "the reward cannot be redeemed at this time", {"reward": reward.id})
    if reason == "NOT_ELIGIBLE":
        raise FailedPrecondition(
            reason,
            "the reward is reserved for other tiers or segments",
            {"reward": reward.id, "tier": tier, "eligible_tiers": ",".join(reward.eligible_tiers)},
        )


def require_self_service(reward: Reward) -> None:
    """Handsets and prizes are reserved at a partner shop, not redeemed in one step."""
    if reward.at_partner:
        raise FailedPrecondition(
            "REDEEMED_AT_PARTNER",
            "this reward is handed over at a partner shop: reserve it there",
            {"reward": reward.id},
        )


def require_partner_reward(reward: Reward) -> None:
    """Only handsets and prizes are reserved at partner shops."""
    if not reward.at_partner:
        raise FailedPrecondition(
            "SELF_SERVICE_REWARD", "this reward is redeemed in one step, not reserved", {"reward": reward.id}
        )


def require_held(reservation: Reservation, *, capturing: bool, now: datetime) -> None:
    """A reservation is captured or released only while held, and captured only before it lapses."""
    name = {"reservation": str(reservation.id), "state": reservation.state.value}
    if reservation.state is not ReservationState.HELD:
        raise FailedPrecondition("RESERVATION_SETTLED", f"the reservation is {reservation.state.value.lower()}", name)
    if capturing and now >= reservation.expire_time:
        raise FailedPrecondition("RESERVATION_EXPIRED", "the reservation lapsed before the capture", name)


def require_partner_caller(caller_kind: str, caller_tenant: str, partner: str) -> None:
    """A retail partner's counter acts only for its own shops: a caller of kind `retailer` may
    reserve, capture and release only with its own partner id (its tenant)."""
    if caller_kind == "retailer" and caller_tenant != partner:
        raise PermissionDenied(
            "OTHER_PARTNER",
            "a retail partner acts only for its own shops",
            {"partner": partner, "caller": caller_tenant},
        )
