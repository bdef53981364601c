"""Next-best actions' domain values to and from their protobuf messages."""

from datetime import datetime
from typing import cast

from google.protobuf import field_mask_pb2

from chassis.errors import invalid_field
from chassis.etags import etag
from chassis.names import CUSTOMER
from chassis.wellknown import timestamp_to_proto
from crm.common.v1 import common_pb2
from crm.offers.v1 import next_best_action_pb2 as nba_pb2
from crm.offers.v1 import offer_presentation_pb2 as presentation_pb2
from services.offers.action_rules import (
    DEFAULT_VALIDITY_DAYS,
    UPDATABLE_RULE_FIELDS,
    ActionKind,
    ActionRule,
    ContactPolicy,
)
from services.offers.mapping import money_to_proto
from services.offers.money import Money
from services.offers.next_best_actions import ChosenAction, CustomerPicture, Decision, PassedOver
from services.offers.offer_lifecycle import OfferState, Presentation, rate
from services.offers.offer_presentation_store import Counted, PeriodCounts

ACTION_KINDS: dict[nba_pb2.ActionKind, ActionKind] = {
    nba_pb2.ACTION_KIND_RETENTION_OFFER: ActionKind.RETENTION_OFFER,
    nba_pb2.ACTION_KIND_BUNDLE_OFFER: ActionKind.BUNDLE_OFFER,
    nba_pb2.ACTION_KIND_LOYALTY_OFFER: ActionKind.LOYALTY_OFFER,
    nba_pb2.ACTION_KIND_SERVICE_MESSAGE: ActionKind.SERVICE_MESSAGE,
}
_KIND_NUMBERS = {kind: number for number, kind in ACTION_KINDS.items()}
CONTACT_POLICY = "contactPolicy"
RULE_PREFIX = "actionRules/"
_REPEATED = {"required_segments", "excluded_segments", "loyalty_tiers", "regions", "channels"}


def channel_text(channel: common_pb2.Channel) -> str:
    """ "APP" for CHANNEL_APP; "UNSPECIFIED" for none."""
    return common_pb2.Channel.Name(channel).removeprefix("CHANNEL_")


def channel_number(channel: str) -> common_pb2.Channel:
    """CHANNEL_APP for "APP"."""
    return cast(common_pb2.Channel, common_pb2.Channel.Value(f"CHANNEL_{channel}"))


def rule_from_proto(message: nba_pb2.ActionRule, rule_id: str) -> ActionRule:
    """A rule as a request describes it (checked by `action_rules.checked_rule`)."""
    return ActionRule(
        rule_id=rule_id,
        display_name=message.display_name,
        kind=_kind(message.kind),
        offering=message.offering.strip(),
        message=message.message,
        market=message.market.strip().upper(),
        required_segments=tuple(message.required_segments),
        excluded_segments=tuple(message.excluded_segments),
        loyalty_tiers=tuple(message.loyalty_tiers),
        regions=tuple(message.regions),
        channels=tuple(channel_text(channel) for channel in message.channels),
        value=message.value,
        business_weight=message.business_weight,
        active=message.active,
        offer_validity_days=message.offer_validity_days or DEFAULT_VALIDITY_DAYS,
    )


def rule_patch_from_proto(
    message: nba_pb2.ActionRule, mask: field_mask_pb2.FieldMask, current: ActionRule
) -> ActionRule:
    """`current` with the fields of `mask` taken from `message`, read like a new rule."""
    merged = rule_to_proto(current)
    for path in mask.paths:
        if path in UPDATABLE_RULE_FIELDS:
            merged.ClearField(path)
            if path in _REPEATED:
                getattr(merged, path).extend(getattr(message, path))
            else:
                setattr(merged, path, getattr(message, path))
    return rule_from_proto(merged, current.rule_id)


def rule_to_proto(rule: ActionRule) -> nba_pb2.ActionRule:
    """The rule as the contract shows it."""
    return nba_pb2.ActionRule(
        name=rule.name,
        display_name=rule.display_name,
        kind=_KIND_NUMBERS[rule.kind],
        offering=rule.offering,
        message=rule.message,
        market=rule.market,
        required_segments=rule.required_segments,
        excluded_segments=rule.excluded_segments,
        loyalty_tiers=rule.loyalty_tiers,
        regions=rule.regions,
        channels=[channel_number(channel) for channel in rule.channels],
        value=rule.value,
        business_weight=rule.business_weight,
        active=rule.active,
        offer_validity_days=rule.offer_validity_days,
        create_time=timestamp_to_proto(rule.create_time),
        update_time=timestamp_to_proto(rule.update_time),
        etag=etag(rule.version),
    )


def policy_from_proto(message: nba_pb2.ContactPolicy) -> ContactPolicy:
    """The policy's fields as a request gives them."""
    return ContactPolicy(
        max_offers_per_week_per_channel=message.max_offers_per_week_per_channel,
        decline_cooldown_days=message.decline_cooldown_days,
        quiet_hours_start_hour=message.quiet_hours_start_hour,
        quiet_hours_end_hour=message.quiet_hours_end_hour,
        quiet_hours_channels=tuple(channel_text(channel) for channel in message.quiet_hours_channels),
    )


def policy_to_proto(policy: ContactPolicy) -> nba_pb2.ContactPolicy:
    """The policy as the contract shows it."""
    return nba_pb2.ContactPolicy(
        name=CONTACT_POLICY,
        max_offers_per_week_per_channel=policy.max_offers_per_week_per_channel,
        decline_cooldown_days=policy.decline_cooldown_days,
        quiet_hours_start_hour=policy.quiet_hours_start_hour,
        quiet_hours_end_hour=policy.quiet_hours_end_hour,
        quiet_hours_channels=[channel_number(channel) for channel in policy.quiet_hours_channels],
        update_time=timestamp_to_proto(policy.update_time),
        etag=etag(policy.version),
    )


def decision_to_proto(
    picture: CustomerPicture, decision: Decision, channel: common_pb2.Channel, now: datetime
) -> nba_pb2.NextBestActions:
    """The decision as the contract shows it."""
    return nba_pb2.NextBestActions(
        customer=picture.customer,
        channel=channel,
        actions=[_action(action) for action in decision.actions],
        passed_over=[_passed_over(passed) for passed in decision.passed_over],
        segments=sorted(picture.segments),
        loyalty_tier=picture.loyalty_tier,
        marketing_permitted=picture.marketing_permitted,
        arbitration=decision.arbitration,
        decide_time=timestamp_to_proto(now),
    )


def _kind(number: nba_pb2.ActionKind) -> ActionKind:
    kind = ACTION_KINDS.get(number)
    if kind is None:
        raise invalid_field("action_rule.kind", "must name what the action does (retention, bundle, loyalty, service)")
    return kind


def _action(action: ChosenAction) -> nba_pb2.NextBestAction:
    propensity = action.propensity
    return nba_pb2.NextBestAction(
        rule=action.rule.name,
        display_name=action.rule.display_name,
        kind=_KIND_NUMBERS[action.rule.kind],
        offering=action.rule.offering,
        message=action.rule.message,
        propensity=nba_pb2.Propensity(
            value=propensity.value,
            segment=propensity.segment,
            accepted=propensity.accepted,
            presented=propensity.presented,
            prior=propensity.prior,
            prior_weight=propensity.prior_weight,
            explanation=propensity.explanation,
        ),
        value=action.rule.value,
        business_weight=action.rule.business_weight,
        priority=action.priority,
        rank=action.rank,
        reason=action.reason,
    )


def _passed_over(passed: PassedOver) -> nba_pb2.PassedOverAction:
    return nba_pb2.PassedOverAction(
        rule=passed.rule.name,
        display_name=passed.rule.display_name,
        reason=passed.reason,
        explanation=passed.explanation,
        priority=passed.priority,
    )


_OFFER_STATES = {
    OfferState.PRESENTED: presentation_pb2.OFFER_STATE_PRESENTED,
    OfferState.ACCEPTED: presentation_pb2.OFFER_STATE_ACCEPTED,
    OfferState.DECLINED: presentation_pb2.OFFER_STATE_DECLINED,
    OfferState.EXPIRED: presentation_pb2.OFFER_STATE_EXPIRED,
}


def presentation_to_proto(presentation: Presentation) -> presentation_pb2.OfferPresentation:
    """The presentation as the contract shows it."""
    return presentation_pb2.OfferPresentation(
        name=presentation.name,
        customer=CUSTOMER.format(presentation.customer_id) if presentation.customer_id else "",
        rule=f"{RULE_PREFIX}{presentation.rule_id}",
        kind=_KIND_NUMBERS[presentation.kind],
        offering=presentation.offering,
        channel=channel_number(presentation.channel),
        presented_by=presentation.presented_by,
        present_time=timestamp_to_proto(presentation.present_time),
        expire_time=timestamp_to_proto(presentation.expire_time),
        state=_OFFER_STATES[presentation.state],
        decided_by=presentation.decided_by,
        decide_channel=channel_number(presentation.decide_channel) if presentation.decide_channel else None,
        decide_time=timestamp_to_proto(presentation.decide_time),
        segments=presentation.segments,
        priority=presentation.priority,
        etag=etag(presentation.version),
    )


def kpis_to_proto(
    start: datetime,
    end: datetime,
    counts: PeriodCounts,
    savings: list[Money],
    recommended_changes_applied: int,
    retention_accepted: tuple[int, int],
    retention_declined: tuple[int, int],
    retention_effect: str,
) -> presentation_pb2.OfferKpis:
    """A period's KPIs as the contract shows them."""
    return presentation_pb2.OfferKpis(
        start_time=timestamp_to_proto(start),
        end_time=timestamp_to_proto(end),
        presented=counts.presented,
        accepted=counts.accepted,
        declined=counts.declined,
        expired=counts.expired,
        take_up_rate=rate(counts.accepted, counts.presented),
        by_offer=[_take_up(Counted(f"{RULE_PREFIX}{c.key}", c.presented, c.accepted)) for c in counts.by_rule],
        by_segment=[_take_up(c) for c in counts.by_segment],
        monthly_savings_given=[money_to_proto(amount) for amount in savings],
        recommended_changes_applied=recommended_changes_applied,
        retention_accepted=_churn(retention_accepted),
        retention_declined=_churn(retention_declined),
        retention_effect=retention_effect,
    )


def _take_up(counted: Counted) -> presentation_pb2.TakeUpRate:
    return presentation_pb2.TakeUpRate(
        key=counted.key,
        presented=counted.presented,
        accepted=counted.accepted,
        take_up_rate=rate(counted.accepted, counted.presented),
    )


def _churn(customers_and_churned: tuple[int, int]) -> presentation_pb2.ChurnAfterRetention:
    customers, churned = customers_and_churned
    return presentation_pb2.ChurnAfterRetention(
        customers=customers, churned=churned, churn_rate=rate(churned, customers)
    )
