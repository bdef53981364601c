"""Offers' domain values to and from their protobuf messages."""

from datetime import datetime
from typing import TypeVar

from google.protobuf import field_mask_pb2
from google.type import date_pb2, money_pb2

from chassis.errors import InvalidArgument, Violations
from chassis.etags import etag
from chassis.names import SUBSCRIPTION
from chassis.wellknown import money_to_decimal, timestamp_from_proto, timestamp_to_proto
from crm.common.v1 import common_pb2
from crm.customer.v1 import usage_pb2
from crm.offers.v1 import catalog_pb2, coverage_pb2, plan_change_pb2, recommendation_pb2
from services.offers.advice import Advice, Outcome, option_words
from services.offers.catalog import (
    UPDATABLE_FIELDS,
    Allowance,
    Allowances,
    Lifecycle,
    Offering,
    OfferingKind,
    OverageRates,
    PriceModel,
    Technology,
)
from services.offers.costing import MonthCost
from services.offers.coverage import Area
from services.offers.money import MINOR_DIGITS, Money, minor_units
from services.offers.plan_changes import AcceptanceRequest, AcceptorKind, Origin, PlanChange, State
from services.offers.ranking import CostedPlan
from services.offers.resource_names import PLAN_CHANGE, RECOMMENDATION

KINDS: dict[catalog_pb2.OfferingKind, OfferingKind] = {
    catalog_pb2.OFFERING_KIND_TARIFF_PLAN: OfferingKind.TARIFF_PLAN,
    catalog_pb2.OFFERING_KIND_ADD_ON_BUNDLE: OfferingKind.ADD_ON_BUNDLE,
}
PRICE_MODELS: dict[catalog_pb2.PriceModel, PriceModel] = {
    catalog_pb2.PRICE_MODEL_MONTHLY: PriceModel.MONTHLY,
    catalog_pb2.PRICE_MODEL_PER_CALENDAR_DAY: PriceModel.PER_CALENDAR_DAY,
    catalog_pb2.PRICE_MODEL_PER_DAY_OF_USE: PriceModel.PER_DAY_OF_USE,
}
LIFECYCLES: dict[catalog_pb2.LifecycleStatus, Lifecycle] = {
    catalog_pb2.LIFECYCLE_STATUS_ACTIVE: Lifecycle.ACTIVE,
    catalog_pb2.LIFECYCLE_STATUS_RETIRED: Lifecycle.RETIRED,
}

TECHNOLOGIES: dict[usage_pb2.RadioTechnology, Technology] = {
    usage_pb2.RADIO_TECHNOLOGY_UNSPECIFIED: Technology.UNSPECIFIED,
    usage_pb2.RADIO_TECHNOLOGY_2G: Technology.G2,
    usage_pb2.RADIO_TECHNOLOGY_3G: Technology.G3,
    usage_pb2.RADIO_TECHNOLOGY_4G: Technology.G4,
    usage_pb2.RADIO_TECHNOLOGY_5G: Technology.G5,
}
Number = TypeVar("Number")
Value = TypeVar("Value")


def _inverse(mapping: dict[Number, Value]) -> dict[Value, Number]:
    return {value: key for key, value in mapping.items()}


_KIND_NUMBERS = _inverse(KINDS)
_PRICE_MODEL_NUMBERS = _inverse(PRICE_MODELS)
_LIFECYCLE_NUMBERS = _inverse(LIFECYCLES)
TECHNOLOGY_NUMBERS = _inverse(TECHNOLOGIES)


def offering_from_proto(message: catalog_pb2.ProductOffering, offering_id: str, path: str) -> Offering:
    """The offering a request describes (output-only fields ignored); INVALID_ARGUMENT naming every
    field that cannot be read. The rules of the catalog are checked after (`checked_offering`)."""
    violations = Violations()
    kind = KINDS.get(message.kind)
    if kind is None:
        violations.add(f"{path}.kind", "must be TARIFF_PLAN or ADD_ON_BUNDLE")
    price_model = PRICE_MODELS.get(message.price_model)
    if price_model is None:
        violations.add(f"{path}.price_model", "must be MONTHLY, PER_CALENDAR_DAY or PER_DAY_OF_USE")
    price = read_money(message.price, f"{path}.price", violations)
    currency = price.currency
    overage = message.overage_rates
    rates = OverageRates(
        on_net_minute=_rate(overage.on_net_minute, currency, f"{path}.overage_rates.on_net_minute", violations),
        off_net_minute=_rate(overage.off_net_minute, currency, f"{path}.overage_rates.off_net_minute", violations),
        sms=_rate(overage.sms, currency, f"{path}.overage_rates.sms", violations),
        data_mb=_rate(overage.data_mb, currency, f"{path}.overage_rates.data_mb", violations),
    )
    technology = TECHNOLOGIES.get(message.required_technology)
    if technology is None:
        violations.add(f"{path}.required_technology", "is not a radio technology")
    if kind is None or price_model is None or technology is None or violations.items:
        raise InvalidArgument(violations.items)
    allowances = message.allowances
    return Offering(
        kind=kind,
        offering_id=offering_id,
        display_name=message.display_name,
        description=message.description,
        market=message.market.strip().upper(),
        price_model=price_model,
        price=price,
        allowances=Allowances(
            on_net_minutes=Allowance(allowances.on_net_minutes, allowances.unlimited_on_net_minutes),
            off_net_minutes=Allowance(allowances.off_net_minutes, allowances.unlimited_off_net_minutes),
            sms=Allowance(allowances.sms, allowances.unlimited_sms),
            data_mb=Allowance(allowances.data_mb, allowances.unlimited_data),
        ),
        overage=rates,
        required_technology=technology,
        regions=tuple(message.regions),
        start_time=timestamp_from_proto(message.start_time) if message.HasField("start_time") else None,
        end_time=timestamp_from_proto(message.end_time) if message.HasField("end_time") else None,
        promoted=message.promoted,
    )


def offering_update_paths(mask: field_mask_pb2.FieldMask) -> list[str]:
    """The fields an update names; INVALID_ARGUMENT for none or one that cannot change."""
    violations = Violations()
    if not mask.paths:
        violations.add("update_mask", "must name at least one field")
    for path in mask.paths:
        if path not in UPDATABLE_FIELDS:
            violations.add("update_mask", f"{path!r} cannot be updated; updatable: {', '.join(UPDATABLE_FIELDS)}")
    violations.raise_if_any()
    return list(mask.paths)


def offering_patch_from_proto(
    message: catalog_pb2.ProductOffering, mask: field_mask_pb2.FieldMask, current: Offering
) -> Offering:
    """`current` with the fields of `mask` taken from `message`, read like a new offering."""
    merged = offering_to_proto(current)
    mask.MergeMessage(message, merged, replace_message_field=True, replace_repeated_field=True)
    return offering_from_proto(merged, current.offering_id, "product_offering")


def offering_to_proto(offering: Offering) -> catalog_pb2.ProductOffering:
    """The message of one version of an offering."""
    allowances = offering.allowances
    return catalog_pb2.ProductOffering(
        name=offering.name,
        kind=_KIND_NUMBERS[offering.kind],
        display_name=offering.display_name,
        description=offering.description,
        market=offering.market,
        price_model=_PRICE_MODEL_NUMBERS[offering.price_model],
        price=money_to_proto(offering.price),
        allowances=catalog_pb2.Allowances(
            on_net_minutes=allowances.on_net_minutes.amount,
            unlimited_on_net_minutes=allowances.on_net_minutes.unlimited,
            off_net_minutes=allowances.off_net_minutes.amount,
            unlimited_off_net_minutes=allowances.off_net_minutes.unlimited,
            sms=allowances.sms.amount,
            unlimited_sms=allowances.sms.unlimited,
            data_mb=allowances.data_mb.amount,
            unlimited_data=allowances.data_mb.unlimited,
        ),
        overage_rates=catalog_pb2.OverageRates(
            on_net_minute=money_to_proto(offering.rate(offering.overage.on_net_minute)),
            off_net_minute=money_to_proto(offering.rate(offering.overage.off_net_minute)),
            sms=money_to_proto(offering.rate(offering.overage.sms)),
            data_mb=money_to_proto(offering.rate(offering.overage.data_mb)),
        ),
        required_technology=TECHNOLOGY_NUMBERS[offering.required_technology],
        regions=list(offering.regions),
        start_time=timestamp_to_proto(offering.start_time),
        end_time=timestamp_to_proto(offering.end_time),
        lifecycle_status=_LIFECYCLE_NUMBERS[offering.lifecycle],
        promoted=offering.promoted,
        version=offering.version,
        etag=etag(offering.version),
        create_time=timestamp_to_proto(offering.create_time),
        update_time=timestamp_to_proto(offering.update_time),
        retire_time=timestamp_to_proto(offering.retire_time),
    )


def money_to_proto(money: Money) -> money_pb2.Money:
    """A google.type.Money of an amount in minor units."""
    units, minor = divmod(abs(money.minor), 10 ** MINOR_DIGITS[money.currency])
    nanos = minor * 10 ** (9 - MINOR_DIGITS[money.currency])
    sign = -1 if money.minor < 0 else 1
    return money_pb2.Money(currency_code=money.currency, units=sign * units, nanos=sign * nanos)


def read_money(message: money_pb2.Money, field: str, violations: Violations) -> Money:
    """An amount in whole minor units of a known currency; a violation of `field` otherwise (and zero)."""
    currency = message.currency_code.strip().upper()
    if currency not in MINOR_DIGITS:
        violations.add(f"{field}.currency_code", f"must be one of {', '.join(sorted(MINOR_DIGITS))}")
        return Money(0, currency)
    amount = money_to_decimal(message)
    minor = None if amount is None else minor_units(amount, currency)
    if minor is None:
        violations.add(field, f"must be a whole number of {currency}'s minor unit, units and nanos of one sign")
        return Money(0, currency)
    return Money(minor, currency)


def _rate(message: money_pb2.Money, currency: str, field: str, violations: Violations) -> int:
    if not message.currency_code and not message.units and not message.nanos:
        return 0
    rate = read_money(message, field, violations)
    if rate.currency != currency and currency in MINOR_DIGITS:
        violations.add(f"{field}.currency_code", f"must be {currency}, the currency of the price")
    return rate.minor


def recommendation_to_proto(
    advice: Advice, name: str, subscription: str, now: datetime
) -> recommendation_pb2.TariffRecommendation:
    """The advice as the contract tells it."""
    recommended = advice.recommended
    saving = advice.monthly_saving
    return recommendation_pb2.TariffRecommendation(
        name=name,
        subscription=subscription,
        outcome=OUTCOMES[advice.outcome],
        current_plan=advice.current_plan,
        current_monthly_cost=money_to_proto(advice.current.expected_monthly_cost) if advice.current else None,
        recommended_plan=recommended.plan.name if recommended else "",
        recommended_monthly_cost=money_to_proto(recommended.expected_monthly_cost) if recommended else None,
        monthly_saving=money_to_proto(saving) if saving else None,
        months=[date_pb2.Date(year=m.year, month=m.month, day=1) for m in advice.months],
        usage_summary=advice.usage_summary,
        explanation=advice.explanation,
        options=[_option(advice, option, rank) for rank, option in enumerate(advice.options, start=1)],
        ineligible_plans=[
            recommendation_pb2.IneligiblePlan(plan=plan.name, reason=why.reason, explanation=why.explanation)
            for plan, why in advice.ineligible
        ],
        create_time=timestamp_to_proto(now),
    )


OUTCOMES = {
    Outcome.SWITCH: recommendation_pb2.RECOMMENDATION_OUTCOME_SWITCH,
    Outcome.STAY: recommendation_pb2.RECOMMENDATION_OUTCOME_STAY,
    Outcome.NO_USAGE: recommendation_pb2.RECOMMENDATION_OUTCOME_NO_USAGE,
}


def _option(advice: Advice, option: CostedPlan, rank: int) -> recommendation_pb2.PlanOption:
    extra = advice.extra_cost(option)
    return recommendation_pb2.PlanOption(
        plan=option.plan.name,
        plan_version=option.plan.version,
        display_name=option.plan.display_name,
        rank=rank,
        expected_monthly_cost=money_to_proto(option.expected_monthly_cost),
        covers_usage=option.covers_usage,
        current=option.plan.name == advice.current_plan,
        promoted=option.plan.promoted,
        extra_monthly_cost=money_to_proto(extra),
        months=[_month_cost(month) for month in option.months],
        explanation=option_words(option, extra),
    )


def _month_cost(cost: MonthCost) -> recommendation_pb2.MonthCost:
    return recommendation_pb2.MonthCost(
        month=date_pb2.Date(year=cost.month.year, month=cost.month.month, day=1),
        charges=[
            recommendation_pb2.Charge(
                item=charge.item,
                units=charge.units,
                unit_price=money_to_proto(charge.unit_price),
                amount=money_to_proto(charge.amount),
                description=charge.description,
            )
            for charge in cost.charges
        ],
        total=money_to_proto(cost.total),
    )


def area_from_proto(message: coverage_pb2.CoverageArea) -> Area:
    """A coverage area as a request gives it (an unknown technology reads as unspecified, refused later)."""
    return Area(
        market=message.market.strip().upper(),
        area=message.area,
        technologies=frozenset(TECHNOLOGIES.get(t, Technology.UNSPECIFIED) for t in message.technologies),
    )


def area_to_proto(area: Area) -> coverage_pb2.CoverageArea:
    """A coverage area's message, technologies in order."""
    return coverage_pb2.CoverageArea(
        area=area.area,
        market=area.market,
        technologies=[TECHNOLOGY_NUMBERS[t] for t in sorted(area.technologies)],
    )


ACCEPTOR_KINDS: dict[plan_change_pb2.AcceptorKind, AcceptorKind] = {
    plan_change_pb2.ACCEPTOR_KIND_CUSTOMER: AcceptorKind.CUSTOMER,
    plan_change_pb2.ACCEPTOR_KIND_AGENT_FOR_CUSTOMER: AcceptorKind.AGENT_FOR_CUSTOMER,
}
ORIGINS: dict[plan_change_pb2.PlanChangeOrigin, Origin] = {
    plan_change_pb2.PLAN_CHANGE_ORIGIN_REQUEST: Origin.REQUEST,
    plan_change_pb2.PLAN_CHANGE_ORIGIN_RECOMMENDATION: Origin.RECOMMENDATION,
    plan_change_pb2.PLAN_CHANGE_ORIGIN_RETIREMENT: Origin.RETIREMENT,
}
STATES: dict[plan_change_pb2.PlanChangeState, State] = {
    plan_change_pb2.PLAN_CHANGE_STATE_PROPOSED: State.PROPOSED,
    plan_change_pb2.PLAN_CHANGE_STATE_ACCEPTED: State.ACCEPTED,
    plan_change_pb2.PLAN_CHANGE_STATE_APPLIED: State.APPLIED,
    plan_change_pb2.PLAN_CHANGE_STATE_REFUSED: State.REFUSED,
    plan_change_pb2.PLAN_CHANGE_STATE_DECLINED: State.DECLINED,
}
_ACCEPTOR_NUMBERS = _inverse(ACCEPTOR_KINDS)
_ORIGIN_NUMBERS = _inverse(ORIGINS)
_STATE_NUMBERS = _inverse(STATES)


CHANNELS: dict[str, common_pb2.Channel] = {
    "RETAIL_SHOP": common_pb2.CHANNEL_RETAIL_SHOP,
    "WEB": common_pb2.CHANNEL_WEB,
    "APP": common_pb2.CHANNEL_APP,
    "CALL_CENTRE": common_pb2.CHANNEL_CALL_CENTRE,
}


def channel_name(channel: common_pb2.Channel) -> str:
    """A channel's name as stored ("CALL_CENTRE"); empty when unspecified."""
    return next((name for name, number in CHANNELS.items() if number == channel), "")


def acceptance_from_proto(message: plan_change_pb2.Acceptance, present: bool) -> AcceptanceRequest | None:
    """The acceptance a request carries; None when it carries none."""
    if not present:
        return None
    return AcceptanceRequest(ACCEPTOR_KINDS.get(message.acceptor_kind), channel_name(message.channel))


def plan_change_to_proto(change: PlanChange) -> plan_change_pb2.PlanChange:
    """A plan change's message, with the evidence of its acceptance."""
    acceptance = change.acceptance
    return plan_change_pb2.PlanChange(
        name=PLAN_CHANGE.format(change.id),
        subscription=SUBSCRIPTION.format(change.customer_id, change.subscription_id),
        from_plan=change.from_plan,
        to_plan=change.to_plan,
        to_plan_version=change.to_plan_version,
        to_plan_price=money_to_proto(change.to_plan_price),
        origin=_ORIGIN_NUMBERS[change.origin],
        recommendation=RECOMMENDATION.format(change.recommendation_id) if change.recommendation_id else "",
        state=_STATE_NUMBERS[change.state],
        acceptance=plan_change_pb2.Acceptance(
            acceptor_kind=_ACCEPTOR_NUMBERS[acceptance.acceptor_kind],
            channel=CHANNELS[acceptance.channel],
            accepted_by=acceptance.accepted_by,
            accept_time=timestamp_to_proto(acceptance.accept_time),
            statement=acceptance.statement,
        )
        if acceptance
        else None,
        decline_note=change.decline_note,
        refusal_reason=change.refusal_reason,
        refusal_message=change.refusal_message,
        create_time=timestamp_to_proto(change.create_time),
        settle_time=timestamp_to_proto(change.settle_time),
        etag=etag(change.version),
    )
