"""Translation between the loyalty contract's messages and the ledger's types, both ways.

Resource names are parsed by their patterns (`resource_names`); every other rule lives in the
ledger, the program's rules and the catalog's rules.
"""

from dataclasses import replace
from datetime import datetime

from google.type import money_pb2

from chassis.errors import invalid_field
from chassis.etags import etag
from chassis.names import CUSTOMER
from chassis.wellknown import (
    amount_from_proto,
    decimal_to_money,
    duration_to_proto,
    timestamp_from_proto,
    timestamp_to_proto,
)
from crm.loyalty.v1 import loyalty_pb2, program_pb2, rewards_pb2
from services.loyalty import program_rules, rewards
from services.loyalty.ledger import Account, Entry
from services.loyalty.program_rules import Program
from services.loyalty.resource_names import ACCOUNT, EARNING_RULE, ENTRY, PROGRAM, RESERVATION, REWARD
from services.loyalty.rewards import Reservation, Reward


def account_to_proto(account: Account) -> loyalty_pb2.Account:
    """The Account message of an account."""
    return loyalty_pb2.Account(
        name=ACCOUNT.format(account.id),
        customer=CUSTOMER.format(account.id),
        available_points=account.balance,
        lifetime_earned_points=account.lifetime_earned,
        lifetime_redeemed_points=account.lifetime_redeemed,
        entry_count=account.entry_count,
        create_time=timestamp_to_proto(account.create_time),
        update_time=timestamp_to_proto(account.update_time),
        reserved_points=account.reserved,
        lifetime_expired_points=account.lifetime_expired,
        tier=account.tier,
        tier_review_time=timestamp_to_proto(account.tier_review_time),
        state=f"ACCOUNT_STATE_{account.state.value}",
    )


def entry_to_proto(entry: Entry) -> loyalty_pb2.LedgerEntry:
    """The LedgerEntry message of an entry."""
    message = unnumbered_entry_to_proto(entry)
    message.name = ENTRY.format(entry.account_id, entry.number)
    message.balance_after = entry.balance_after
    return message


def unnumbered_entry_to_proto(entry: Entry) -> loyalty_pb2.LedgerEntry:
    """The LedgerEntry message of an entry without its name and balance: what the service knows of
    an entry before the database numbers it (the `post_points` function adds them)."""
    account = entry.account_id
    return loyalty_pb2.LedgerEntry(
        kind=f"ENTRY_KIND_{entry.kind.value}",
        points=entry.points,
        reason=entry.reason,
        source_reference=entry.source_reference,
        reversed_entry=ENTRY.format(account, entry.reversed_entry) if entry.reversed_entry else "",
        actor=entry.actor,
        create_time=timestamp_to_proto(entry.create_time),
        reserved_points_change=entry.reserved_change,
        rule=EARNING_RULE.format(entry.rule) if entry.rule else "",
        reservation=RESERVATION.format(account, entry.reservation) if entry.reservation else "",
        source_event=str(entry.source_event) if entry.source_event else "",
        expire_time=timestamp_to_proto(entry.expire_time),
    )


def program_from_proto(message: program_pb2.Program) -> Program:
    """The program a message describes (checked by `program_rules.check_program`, not here)."""
    return Program(
        tiers=tuple(
            program_rules.Tier(t.id, t.display_name, t.qualifying_points, t.earn_multiplier_percent or 100)
            for t in message.tiers
        ),
        earning_rules=tuple(_rule_from_proto(rule, index) for index, rule in enumerate(message.earning_rules)),
        points_validity=message.points_validity.ToTimedelta(),
        qualification_window=message.qualification_window.ToTimedelta(),
        tier_review_period=message.tier_review_period.ToTimedelta(),
        point_value=money_from_proto(message.point_value, "program.point_value"),
    )


def program_to_proto(value: Program) -> program_pb2.Program:
    """The Program message of a program version; its etag stands for the version number."""
    return program_pb2.Program(
        name=PROGRAM.format(),
        tiers=[
            program_pb2.Tier(
                id=t.id,
                display_name=t.display_name,
                qualifying_points=t.qualifying_points,
                earn_multiplier_percent=t.earn_multiplier_percent,
            )
            for t in value.tiers
        ],
        earning_rules=[_rule_to_proto(rule) for rule in value.earning_rules],
        point_value=money_to_proto(value.point_value),
        version=value.version,
        update_time=timestamp_to_proto(value.update_time),
        etag=etag(value.version),
        points_validity=duration_to_proto(value.points_validity),
        qualification_window=duration_to_proto(value.qualification_window),
        tier_review_period=duration_to_proto(value.tier_review_period),
    )


def program_definition(value: Program) -> bytes:
    """What the database stores of a program version: its message without the output-only fields."""
    message = program_to_proto(value)
    for output_only in ("name", "version", "update_time", "etag"):
        message.ClearField(output_only)
    return message.SerializeToString()


def program_from_definition(definition: bytes, version: int, create_time: datetime) -> Program:
    """A stored program version."""
    stored = program_from_proto(program_pb2.Program.FromString(definition))
    return replace(stored, version=version, update_time=create_time)


def reward_from_proto(message: rewards_pb2.Reward, reward_id: str) -> Reward:
    """The reward a creation request describes (checked by `rewards.check_reward`, not here)."""
    if message.kind == rewards_pb2.REWARD_KIND_UNSPECIFIED:
        raise invalid_field("reward.kind", "is required")
    return Reward(
        id=reward_id,
        display_name=message.display_name.strip(),
        kind=rewards.RewardKind(rewards_pb2.RewardKind.Name(message.kind).removeprefix("REWARD_KIND_")),
        points_price=message.points_price,
        value=money_from_proto(message.value, "reward.value") if message.HasField("value") else None,
        start_time=timestamp_from_proto(message.start_time) if message.HasField("start_time") else None,
        end_time=timestamp_from_proto(message.end_time) if message.HasField("end_time") else None,
        eligible_tiers=tuple(message.eligible_tiers),
        eligible_segments=tuple(message.eligible_segments),
    )


def reward_to_proto(reward: Reward) -> rewards_pb2.Reward:
    """The Reward message of a catalog item with its stock."""
    return rewards_pb2.Reward(
        name=REWARD.format(reward.id),
        display_name=reward.display_name,
        kind=f"REWARD_KIND_{reward.kind.value}",
        points_price=reward.points_price,
        value=money_to_proto(reward.value) if reward.value else None,
        start_time=timestamp_to_proto(reward.start_time),
        end_time=timestamp_to_proto(reward.end_time),
        eligible_tiers=list(reward.eligible_tiers),
        eligible_segments=list(reward.eligible_segments),
        stock=[
            rewards_pb2.PartnerStock(partner=s.partner, available=s.available, reserved=s.reserved)
            for s in reward.stock
        ],
        create_time=timestamp_to_proto(reward.create_time),
    )


def reward_definition(reward: Reward) -> bytes:
    """What the catalog stores of a reward: its message without name, stock and creation time."""
    message = reward_to_proto(reward)
    for output_only in ("name", "stock", "create_time"):
        message.ClearField(output_only)
    return message.SerializeToString()


def reward_from_definition(
    reward_id: str, definition: bytes, create_time: datetime, stock: list[rewards.PartnerStock]
) -> Reward:
    """A stored reward with its stock."""
    stored = reward_from_proto(rewards_pb2.Reward.FromString(definition), reward_id)
    return replace(stored, create_time=create_time, stock=tuple(stock))


def reservation_to_proto(reservation: Reservation) -> rewards_pb2.Reservation:
    """The Reservation message of a reservation."""
    account = reservation.account_id
    return rewards_pb2.Reservation(
        name=RESERVATION.format(account, reservation.id),
        reward=REWARD.format(reservation.reward),
        partner=reservation.partner,
        points=reservation.points,
        state=f"RESERVATION_STATE_{reservation.state.value}",
        expire_time=timestamp_to_proto(reservation.expire_time),
        create_time=timestamp_to_proto(reservation.create_time),
        settle_time=timestamp_to_proto(reservation.settle_time),
        reserve_entry=ENTRY.format(account, reservation.reserve_entry),
        settle_entry=ENTRY.format(account, reservation.settle_entry) if reservation.settle_entry else "",
    )


def money_from_proto(message: money_pb2.Money, field: str) -> program_rules.Money:
    """A Money message as an amount; INVALID_ARGUMENT naming `field` when units and nanos disagree."""
    return program_rules.Money(message.currency_code, amount_from_proto(message, field))


def money_to_proto(money: program_rules.Money) -> money_pb2.Money:
    """The Money message of an amount."""
    return decimal_to_money(money.amount, money.currency_code)


def _rule_from_proto(message: program_pb2.EarningRule, index: int) -> program_rules.EarningRule:
    path = f"program.earning_rules[{index}]"
    if message.trigger == program_pb2.EARNING_TRIGGER_UNSPECIFIED:
        raise invalid_field(f"{path}.trigger", "is required")
    condition, action = message.condition, message.action
    measure = None
    if action.measure != program_pb2.USAGE_MEASURE_UNSPECIFIED:
        measure_name = program_pb2.UsageMeasure.Name(action.measure).removeprefix("USAGE_MEASURE_")
        measure = program_rules.UsageMeasure(measure_name)
    trigger_name = program_pb2.EarningTrigger.Name(message.trigger).removeprefix("EARNING_TRIGGER_")
    return program_rules.EarningRule(
        id=message.id,
        display_name=message.display_name.strip(),
        trigger=program_rules.Trigger(trigger_name),
        condition=program_rules.Condition(
            start_time=timestamp_from_proto(condition.start_time) if condition.HasField("start_time") else None,
            end_time=timestamp_from_proto(condition.end_time) if condition.HasField("end_time") else None,
            segments=tuple(condition.segments),
            regions=tuple(condition.regions),
            currency_code=condition.currency_code,
        ),
        action=program_rules.Action(
            points=action.points,
            per_amount=money_from_proto(action.per_amount, f"{path}.action.per_amount")
            if action.HasField("per_amount")
            else None,
            measure=measure,
            per_quantity=action.per_quantity,
            per_tenure_year=action.per_tenure_year,
            max_points=action.max_points,
            apply_tier_multiplier=action.apply_tier_multiplier,
        ),
    )


def _rule_to_proto(rule: program_rules.EarningRule) -> program_pb2.EarningRule:
    condition, action = rule.condition, rule.action
    return program_pb2.EarningRule(
        id=rule.id,
        display_name=rule.display_name,
        trigger=f"EARNING_TRIGGER_{rule.trigger.value}",
        condition=program_pb2.EarningCondition(
            start_time=timestamp_to_proto(condition.start_time),
            end_time=timestamp_to_proto(condition.end_time),
            segments=list(condition.segments),
            regions=list(condition.regions),
            currency_code=condition.currency_code,
        ),
        action=program_pb2.EarningAction(
            points=action.points,
            per_amount=money_to_proto(action.per_amount) if action.per_amount else None,
            measure=f"USAGE_MEASURE_{action.measure.value}" if action.measure else None,
            per_quantity=action.per_quantity,
            per_tenure_year=action.per_tenure_year,
            max_points=action.max_points,
            apply_tier_multiplier=action.apply_tier_multiplier,
        ),
    )
