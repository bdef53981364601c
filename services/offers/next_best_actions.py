"""Next-best actions for a customer (the Pega shape, explained): every active rule is a candidate; a
candidate is passed over when the customer is not eligible (market, segments, loyalty tier, region,
the offering's sale and coverage), has not given marketing consent for a marketing action, would be
offered something unsuitable (a dearer plan to a debtor), or when the contact policy forbids it (at
most N offers per channel per week, a cool-down after a decline, quiet hours in the customer's time
zone); the rest are ranked by propensity x value x business weight, retention first for a customer
at high risk of leaving. Propensity is learnt from the service's own history of presented and
accepted offers per segment, smoothed towards the rule's overall rate, and shown with its numbers."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.offers.action_rules import ActionKind, ActionRule, ContactPolicy
from services.offers.catalog import Offering, OfferingKind
from services.offers.costing import MonthUsage
from services.offers.eligibility import CoverageMap, LineContext, ineligibility
from services.offers.text_keys import place_key

CHURN_RISK_HIGH = "churn-risk-high"
DEBTOR = "debtor"
BASE_PROPENSITY = 0.05
"""What a rule without any history is expected to be accepted at."""
PRIOR_WEIGHT = 10.0
"""How many presentations' worth the prior counts for against a segment's own history."""
MARKET_TIME_ZONES = {"UZ": "Asia/Tashkent", "UA": "Europe/Kyiv", "VN": "Asia/Ho_Chi_Minh", "KZ": "Asia/Almaty"}
"""The time zone of each market, where the quiet hours are counted."""


@dataclass(frozen=True)
class CustomerLine:
    """One of the customer's lines as the decision sees it."""

    plan: Offering | None
    home_region: str
    usage: Sequence[MonthUsage] = ()


@dataclass(frozen=True)
class CustomerPicture:
    """What the decision knows of the customer."""

    customer: str
    segments: frozenset[str]
    loyalty_tier: str
    lines: Sequence[CustomerLine]
    marketing_permitted: bool
    consent_words: str
    """How the marketing consent stands, in words ("granted through the app on 2025-03-01")."""

    @property
    def market(self) -> str:
        """The market of the customer's lines (the first line's plan's), empty when none is known."""
        return next((line.plan.market for line in self.lines if line.plan is not None), "")


@dataclass(frozen=True)
class TakeUp:
    """How often a rule's offer was presented and accepted."""

    presented: int = 0
    accepted: int = 0


TakeUpHistory = Mapping[tuple[str, str], TakeUp]
"""Take-up by (rule id, segment id); the segment "" holds every customer's."""


@dataclass(frozen=True)
class ContactHistory:
    """The customer's recent contacts that the contact policy counts."""

    offers_this_week: int
    """Offers presented to the customer on the channel asked in the last 7 days."""
    last_declines: Mapping[str, datetime]
    """When the customer last declined each rule's offer, by rule id."""


@dataclass(frozen=True)
class Propensity:
    """A learnt propensity with the numbers it came from."""

    value: float
    segment: str
    accepted: int
    presented: int
    prior: float
    prior_weight: float

    @property
    def explanation(self) -> str:
        """The computation in words."""
        whose = f"customers in {self.segment}" if self.segment else "all customers"
        return (
            f"({self.accepted} accepted + {self.prior_weight:g} x {self.prior:.3f}) / "
            f"({self.presented} presented + {self.prior_weight:g}) = {self.value:.3f}, "
            f"from the offer's history with {whose}"
        )


@dataclass(frozen=True)
class ChosenAction:
    """An action chosen for the customer, with every factor of its priority."""

    rule: ActionRule
    propensity: Propensity
    priority: float
    rank: int
    reason: str


@dataclass(frozen=True)
class PassedOver:
    """A candidate not chosen, and why."""

    rule: ActionRule
    reason: str
    explanation: str
    priority: float = 0.0


@dataclass(frozen=True)
class Decision:
    """The chosen actions, best first, and every candidate passed over."""

    actions: list[ChosenAction]
    passed_over: list[PassedOver]
    arbitration: str


@dataclass(frozen=True)
class DecisionInputs:
    """Everything the decision reads besides the customer."""

    rules: Sequence[ActionRule]
    offerings: Mapping[str, Offering]
    coverage: CoverageMap
    policy: ContactPolicy
    contacts: ContactHistory
    take_up: TakeUpHistory


def decide(picture: CustomerPicture, inputs: DecisionInputs, channel: str, max_actions: int, now: datetime) -> Decision:
    """The best `max_actions` actions for the customer on `channel` at `now`, and why the others were not."""
    candidates: list[tuple[ActionRule, Propensity, float]] = []
    passed: list[PassedOver] = []
    for rule in sorted(inputs.rules, key=lambda r: r.rule_id):
        refusal = _refusal(rule, picture, inputs, channel, now)
        if refusal is not None:
            passed.append(refusal)
            continue
        propensity = learnt_propensity(rule.rule_id, picture.segments, inputs.take_up)
        candidates.append((rule, propensity, propensity.value * rule.value * rule.business_weight))
    retention_first = CHURN_RISK_HIGH in picture.segments
    candidates.sort(
        key=lambda c: (not (retention_first and c[0].kind is ActionKind.RETENTION_OFFER), -c[2], c[0].rule_id)
    )
    offer_room = max(0, inputs.policy.max_offers_per_week_per_channel - inputs.contacts.offers_this_week)
    chosen: list[ChosenAction] = []
    for rule, propensity, priority in candidates:
        if len(chosen) >= max_actions:
            lowest = chosen[-1].priority
            passed.append(
                PassedOver(
                    rule,
                    "OUTRANKED",
                    f"its priority {priority:.3f} ({_factors(propensity, rule)}) ranked below the {len(chosen)} "
                    f"actions chosen (the last at {lowest:.3f})",
                    priority,
                )
            )
            continue
        if rule.kind.is_marketing:
            if offer_room == 0:
                passed.append(
                    PassedOver(
                        rule,
                        "CONTACT_LIMIT",
                        contact_limit_words(
                            inputs.contacts.offers_this_week + _offers(chosen),
                            channel,
                            inputs.policy.max_offers_per_week_per_channel,
                        ),
                        priority,
                    )
                )
                continue
            offer_room -= 1
        chosen.append(
            ChosenAction(
                rule,
                propensity,
                priority,
                len(chosen) + 1,
                _reason(rule, propensity, priority, picture, retention_first),
            )
        )
    arbitration = "ranked by propensity x value x business weight"
    if retention_first:
        arbitration += "; retention offers first, since the customer is at high risk of leaving (churn-risk-high)"
    return Decision(chosen, passed, arbitration)


def learnt_propensity(rule_id: str, segments: frozenset[str], take_up: TakeUpHistory) -> Propensity:
    """The rule's propensity for a customer in `segments`: the take-up of the customer's segment with the
    most presentations of the rule, smoothed towards the rule's overall take-up (itself smoothed
    towards `BASE_PROPENSITY`)."""
    overall = take_up.get((rule_id, ""), TakeUp())
    prior = (overall.accepted + PRIOR_WEIGHT * BASE_PROPENSITY) / (overall.presented + PRIOR_WEIGHT)
    best_segment, best = "", TakeUp()
    for segment in sorted(segments):
        seen = take_up.get((rule_id, segment), TakeUp())
        if seen.presented > best.presented:
            best_segment, best = segment, seen
    if not best_segment:
        return Propensity(prior, "", overall.accepted, overall.presented, BASE_PROPENSITY, PRIOR_WEIGHT)
    value = (best.accepted + PRIOR_WEIGHT * prior) / (best.presented + PRIOR_WEIGHT)
    return Propensity(value, best_segment, best.accepted, best.presented, prior, PRIOR_WEIGHT)


def local_hour(market: str, now: datetime) -> int:
    """The hour of `now` in the market's time zone (UTC for an unknown market)."""
    zone = MARKET_TIME_ZONES.get(market)
    return now.astimezone(ZoneInfo(zone)).hour if zone else now.hour


def _refusal(
    rule: ActionRule, picture: CustomerPicture, inputs: DecisionInputs, channel: str, now: datetime
) -> PassedOver | None:
    """Why the rule's action cannot be chosen for the customer now; None when it can."""
    if not rule.active:
        return PassedOver(rule, "RULE_INACTIVE", "the rule is switched off")
    if rule.channels and channel not in rule.channels:
        return PassedOver(rule, "CHANNEL_NOT_ALLOWED", f"it is presented only through {', '.join(rule.channels)}")
    if rule.market and rule.market != picture.market:
        return PassedOver(
            rule,
            "OTHER_MARKET",
            f"it is for {rule.market}; the customer's lines are in {picture.market or 'no market'}",
        )
    missing = [segment for segment in rule.required_segments if segment not in picture.segments]
    if missing:
        return PassedOver(
            rule, "SEGMENT_REQUIRED", f"it is for customers in {', '.join(missing)}, which the customer is not in"
        )
    excluded = [segment for segment in rule.excluded_segments if segment in picture.segments]
    if excluded:
        return PassedOver(
            rule, "SEGMENT_EXCLUDED", f"it is not for customers in {', '.join(excluded)}, as the customer is"
        )
    if rule.loyalty_tiers and picture.loyalty_tier not in rule.loyalty_tiers:
        held = f"holds {picture.loyalty_tier}" if picture.loyalty_tier else "holds no loyalty tier"
        return PassedOver(
            rule,
            "LOYALTY_TIER_REQUIRED",
            f"it is for loyalty tiers {', '.join(rule.loyalty_tiers)}; the customer {held}",
        )
    if rule.regions and not any(
        place_key(line.home_region) in {place_key(r) for r in rule.regions} for line in picture.lines
    ):
        return PassedOver(
            rule, "NOT_IN_REGION", f"it is for lines at home in {', '.join(rule.regions)}; none of the customer's is"
        )
    if rule.kind.is_marketing and not picture.marketing_permitted:
        return PassedOver(
            rule,
            "NO_MARKETING_CONSENT",
            f"it is a {rule.kind.words} (marketing) and the customer's marketing consent {picture.consent_words}",
        )
    if rule.offering:
        refusal = _offering_refusal(rule, picture, inputs, now)
        if refusal is not None:
            return refusal
    if not rule.kind.is_marketing:
        return None
    declined = inputs.contacts.last_declines.get(rule.rule_id)
    cooldown = timedelta(days=inputs.policy.decline_cooldown_days)
    if declined is not None and now < declined + cooldown:
        return PassedOver(
            rule,
            "DECLINE_COOL_DOWN",
            f"the customer declined it on {declined.date().isoformat()}; it is not offered again for "
            f"{inputs.policy.decline_cooldown_days} days after a decline",
        )
    if channel in inputs.policy.quiet_hours_channels:
        hour = local_hour(picture.market, now)
        if inputs.policy.quiet_at(hour):
            return PassedOver(
                rule,
                "QUIET_HOURS",
                f"it is {hour}:00 where the customer lives, inside the quiet hours "
                f"{inputs.policy.quiet_hours_start_hour}:00-{inputs.policy.quiet_hours_end_hour}:00 for {channel}",
            )
    return None


def _offering_refusal(
    rule: ActionRule, picture: CustomerPicture, inputs: DecisionInputs, now: datetime
) -> PassedOver | None:
    offering = inputs.offerings.get(rule.offering)
    if offering is None:
        return PassedOver(rule, "OFFERING_UNKNOWN", f"{rule.offering} is not in the catalog")
    if not picture.lines:
        return PassedOver(rule, "NO_LINE", f"the customer has no active line to take {offering.display_name} on")
    reasons = []
    for line in picture.lines:
        market = line.plan.market if line.plan is not None else picture.market
        why = ineligibility(offering, LineContext(market, line.home_region, line.usage), inputs.coverage, now)
        if why is None:
            break
        reasons.append(why)
    else:
        return PassedOver(rule, reasons[0].reason, reasons[0].explanation)
    if offering.kind is OfferingKind.TARIFF_PLAN and DEBTOR in picture.segments:
        current = [
            line.plan for line in picture.lines if line.plan is not None and line.plan.currency == offering.currency
        ]
        if current and all(offering.price > plan.price for plan in current):
            cheapest = min(current, key=lambda plan: plan.price)
            return PassedOver(
                rule,
                "DEARER_PLAN_FOR_DEBTOR",
                f"the customer is in debt (debtor) and {offering.display_name} at {offering.price.words()} a month "
                f"costs more than their {cheapest.display_name} at {cheapest.price.words()}",
            )
    return None


def contact_limit_words(offered: int, channel: str, allowed: int) -> str:
    """Why no further offer goes to the customer on `channel`: `offered` this week, `allowed` by the policy."""
    return f"the customer was offered {offered} offers on {channel} within 7 days; the contact policy allows {allowed}"


def _factors(propensity: Propensity, rule: ActionRule) -> str:
    return f"propensity {propensity.value:.3f} x value {rule.value:g} x weight {rule.business_weight:g}"


def _offers(chosen: list[ChosenAction]) -> int:
    return sum(1 for action in chosen if action.rule.kind.is_marketing)


def _reason(
    rule: ActionRule, propensity: Propensity, priority: float, picture: CustomerPicture, retention_first: bool
) -> str:
    parts = [f"{rule.display_name} is a {rule.kind.words}"]
    if rule.required_segments:
        parts.append(f"for customers in {', '.join(rule.required_segments)}, as this customer is")
    if rule.loyalty_tiers:
        parts.append(f"for loyalty tier {picture.loyalty_tier}")
    if rule.kind.is_marketing:
        parts.append(f"the customer's marketing consent {picture.consent_words}")
    else:
        parts.append("a service message, allowed without marketing consent")
    parts.append(f"priority {priority:.3f} = {_factors(propensity, rule)}; propensity {propensity.explanation}")
    if retention_first and rule.kind is ActionKind.RETENTION_OFFER:
        parts.append("put first because the customer is at high risk of leaving (churn-risk-high)")
    return "; ".join(parts)
