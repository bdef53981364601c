"""Translation between the loyalty contract's messages and the ledger's types, both ways.

Malformed resource names are INVALID_ARGUMENT here, naming the field; every other rule lives in
the ledger.
"""

import uuid
from datetime import UTC, datetime, timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import money_pb2

from chassis.errors import invalid_field
from chassis.wellknown import decimal_to_money, money_to_decimal
from crm.loyalty.v1 import loyalty_pb2, program_pb2, rewards_pb2
from services.loyalty import program_rules, rewards
from services.loyalty.ledger import Account, Entry
from services.loyalty.program_rules import Program
from services.loyalty.rewards import Reservation, Reward

PROGRAM_NAME = "program"


def account_name(account_id: uuid.UUID) -> str:
    """`accounts/{account}`."""
    return f"accounts/{account_id}"


def entry_name(account_id: uuid.UUID, number: int) -> str:
    """`accounts/{account}/entries/{entry}`."""
    return f"accounts/{account_id}/entries/{number}"


def parse_account_name(name: str, field: str = "name") -> uuid.UUID:
    """The id in `accounts/{account}`; INVALID_ARGUMENT naming `field` when malformed."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "accounts":
        raise invalid_field(field, f"must look like accounts/{{account}}, got {name!r}")
    return _uuid(parts[1], field, name)


def parse_customer_name(name: str, field: str = "customer") -> uuid.UUID:
    """The id in `customers/{customer}`, which is also the id of the customer's account."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "customers":
        raise invalid_field(field, f"must look like customers/{{customer}}, got {name!r}")
    return _uuid(parts[1], field, name)


def parse_entry_name(name: str, field: str = "name") -> tuple[uuid.UUID, int]:
    """The account id and entry number in `accounts/{account}/entries/{entry}`."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "accounts" or parts[2] != "entries":
        raise invalid_field(field, f"must look like accounts/{{account}}/entries/{{entry}}, got {name!r}")
    if not parts[3].isascii() or not parts[3].isdigit() or int(parts[3]) < 1 or len(parts[3]) > 18:
        raise invalid_field(field, f"has no valid entry number: {name!r}")
    return _uuid(parts[1], field, name), int(parts[3])


def account_to_proto(account: Account) -> loyalty_pb2.Account:
    """The Account message of an account."""
    return loyalty_pb2.Account(
        name=account_name(account.id),
        customer=f"customers/{account.id}",
        available_points=account.balance,
        lifetime_earned_points=account.lifetime_earned,
        lifetime_redeemed_points=account.lifetime_redeemed,
        entry_count=account.entry_count,
        create_time=timestamp(account.create_time),
        update_time=timestamp(account.update_time),
        reserved_points=account.reserved,
        lifetime_expired_points=account.lifetime_expired,
        tier=account.tier,
        tier_review_time=timestamp(account.tier_review_time),
        state=loyalty_pb2.AccountState.Value(f"ACCOUNT_STATE_{account.state.value}"),
    )


def entry_to_proto(entry: Entry) -> loyalty_pb2.LedgerEntry:
    """The LedgerEntry message of an entry."""
    return loyalty_pb2.LedgerEntry(
        name=entry_name(entry.account_id, entry.number),
        kind=loyalty_pb2.EntryKind.Value(f"ENTRY_KIND_{entry.kind.value}"),
        points=entry.points,
        balance_after=entry.balance_after,
        reason=entry.reason,
        source_reference=entry.source_reference,
        reversed_entry=entry_name(entry.account_id, entry.reversed_entry) if entry.reversed_entry else "",
        actor=entry.actor,
        create_time=timestamp(entry.create_time),
        reserved_points_change=entry.reserved_change,
        rule=f"program/earningRules/{entry.rule}" if entry.rule else "",
        reservation=reservation_name(entry.account_id, entry.reservation) if entry.reservation else "",
        source_event=str(entry.source_event) if entry.source_event else "",
        expire_time=timestamp(entry.expire_time),
    )


def reservation_name(account_id: uuid.UUID, reservation_id: uuid.UUID) -> str:
    """`accounts/{account}/reservations/{reservation}`."""
    return f"accounts/{account_id}/reservations/{reservation_id}"


def reward_name(reward_id: str) -> str:
    """`rewards/{reward}`."""
    return f"rewards/{reward_id}"


def parse_account_child(name: str, collection: str, field: str = "name") -> uuid.UUID:
    """The account id in a singleton child name, `accounts/{account}/{collection}`."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "accounts" or parts[2] != collection:
        raise invalid_field(field, f"must look like accounts/{{account}}/{collection}, got {name!r}")
    return _uuid(parts[1], field, name)


def parse_reservation_name(name: str, field: str = "name") -> tuple[uuid.UUID, uuid.UUID]:
    """The account and reservation ids in `accounts/{account}/reservations/{reservation}`."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "accounts" or parts[2] != "reservations":
        raise invalid_field(field, f"must look like accounts/{{account}}/reservations/{{reservation}}, got {name!r}")
    return _uuid(parts[1], field, name), _uuid(parts[3], field, name)


def parse_reward_name(name: str, field: str = "reward") -> str:
    """The id in `rewards/{reward}`."""
    parts = name.split("/")
    if len(parts) != 2 or parts[0] != "rewards" or not program_rules.ID_PATTERN.match(parts[1]):
        raise invalid_field(field, f"must look like rewards/{{reward}}, got {name!r}")
    return parts[1]


def parse_duration(value: Duration, present: bool) -> timedelta | None:
    """A Duration field as a timedelta; None when unset."""
    return value.ToTimedelta() if present else None


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
    """The Program message of a program version; its etag is the version number."""
    message = program_pb2.Program(
        name=PROGRAM_NAME,
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
        update_time=timestamp(value.update_time),
        etag=f'"{value.version}"',
    )
    message.points_validity.FromTimedelta(value.points_validity)
    message.qualification_window.FromTimedelta(value.qualification_window)
    message.tier_review_period.FromTimedelta(value.tier_review_period)
    return message


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
        start_time=message.start_time.ToDatetime(tzinfo=UTC) if message.HasField("start_time") else None,
        end_time=message.end_time.ToDatetime(tzinfo=UTC) if message.HasField("end_time") else None,
        eligible_tiers=tuple(message.eligible_tiers),
        eligible_segments=tuple(message.eligible_segments),
    )


def reward_to_proto(reward: Reward) -> rewards_pb2.Reward:
    """The Reward message of a catalog item with its stock."""
    return rewards_pb2.Reward(
        name=reward_name(reward.id),
        display_name=reward.display_name,
        kind=rewards_pb2.RewardKind.Value(f"REWARD_KIND_{reward.kind.value}"),
        points_price=reward.points_price,
        value=money_to_proto(reward.value) if reward.value else None,
        start_time=timestamp(reward.start_time),
        end_time=timestamp(reward.end_time),
        eligible_tiers=list(reward.eligible_tiers),
        eligible_segments=list(reward.eligible_segments),
        stock=[
            rewards_pb2.PartnerStock(partner=s.partner, available=s.available, reserved=s.reserved)
            for s in reward.stock
        ],
        create_time=timestamp(reward.create_time),
    )


def reward_definition(reward: Reward) -> bytes:
    """What the catalog stores of a reward: its message without name, stock and creation time."""
    message = reward_to_proto(reward)
    for field in ("name", "stock", "create_time"):
        message.ClearField(field)
    return message.SerializeToString()


def reward_from_definition(
    reward_id: str, definition: bytes, create_time: datetime, stock: list[rewards.PartnerStock]
) -> Reward:
    """A stored reward with its stock."""
    stored = reward_from_proto(rewards_pb2.Reward.FromString(definition), reward_id)
    return Reward(**{**stored.__dict__, "create_time": create_time, "stock": tuple(stock)})


def reservation_to_proto(reservation: Reservation) -> rewards_pb2.Reservation:
    """The Reservation message of a reservation."""
    account = reservation.account_id
    return rewards_pb2.Reservation(
        name=reservation_name(account, reservation.id),
        reward=reward_name(reservation.reward),
        partner=reservation.partner,
        points=reservation.points,
        state=rewards_pb2.ReservationState.Value(f"RESERVATION_STATE_{reservation.state.value}"),
        expire_time=timestamp(reservation.expire_time),
        create_time=timestamp(reservation.create_time),
        settle_time=timestamp(reservation.settle_time),
        reserve_entry=entry_name(account, reservation.reserve_entry),
        settle_entry=entry_name(account, reservation.settle_entry) if reservation.settle_entry else "",
    )


def _rule_from_proto(message: program_pb2.EarningRule, index: int) -> program_rules.EarningRule:
    path = f"program.earning_rules[{index}]"
    if message.trigger == program_pb2.EARNING_TRIGGER_UNSPECIFIED:
        raise invalid_field(f"{path}.trigger", "is required")
    condition, action = message.condition, message.action
    measure = None
    if action.measure != program_pb2.USAGE_MEASURE_UNSPECIFIED:
        measure_name = program_pb2.UsageMeasure.Name(action.measure).removeprefix("USAGE_MEASURE_")
        measure = program_rules.UsageMeasure(measure_name)
    return program_rules.EarningRule(
        id=message.id,
        display_name=message.display_name.strip(),
        trigger=program_rules.Trigger(
            program_pb2.EarningTrigger.Name(message.trigger).removeprefix("EARNING_TRIGGER_")
        ),
        condition=program_rules.Condition(
            start_time=condition.start_time.ToDatetime(tzinfo=UTC) if condition.HasField("start_time") else None,
            end_time=condition.end_time.ToDatetime(tzinfo=UTC) if condition.HasField("end_time") else None,
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
        trigger=program_pb2.EarningTrigger.Value(f"EARNING_TRIGGER_{rule.trigger.value}"),
        condition=program_pb2.EarningCondition(
            start_time=timestamp(condition.start_time),
            end_time=timestamp(condition.end_time),
            segments=list(condition.segments),
            regions=list(condition.regions),
            currency_code=condition.currency_code,
        ),
        action=program_pb2.EarningAction(
            points=action.points,
            per_amount=money_to_proto(action.per_amount) if action.per_amount else None,
            measure=program_pb2.UsageMeasure.Value(f"USAGE_MEASURE_{action.measure.value}") if action.measure else 0,
            per_quantity=action.per_quantity,
            per_tenure_year=action.per_tenure_year,
            max_points=action.max_points,
            apply_tier_multiplier=action.apply_tier_multiplier,
        ),
    )


def money_from_proto(message: money_pb2.Money, field: str) -> program_rules.Money:
    """A Money message as an amount; INVALID_ARGUMENT naming `field` when units and nanos disagree."""
    amount = money_to_decimal(message)
    if amount is None:
        raise invalid_field(field, "units and nanos must have the same sign")
    return program_rules.Money(message.currency_code, amount)


def money_to_proto(money: program_rules.Money) -> money_pb2.Money:
    """The Money message of an amount."""
    return decimal_to_money(money.amount, money.currency_code)


def _uuid(text: str, field: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise invalid_field(field, f"has no valid account id: {name!r}") from None


def timestamp(value: datetime | None) -> Timestamp | None:
    """A Timestamp of `value`; None for None."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
