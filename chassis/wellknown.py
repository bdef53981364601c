"""Protobuf well-known and `google.type` values and their Python counterparts, both ways: Timestamp
<-> aware datetime (UTC), Date <-> date, Duration <-> timedelta, Money <-> Decimal (exactly: units
plus nanos). Reading a value that the wire allows but the domain cannot hold is INVALID_ARGUMENT
naming the field."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, money_pb2

from chassis.errors import invalid_field

NANOS = Decimal(1_000_000_000)


def timestamp_to_proto(value: datetime | None) -> Timestamp | None:
    """The Timestamp of `value`; None for None."""
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def timestamp_from_proto(value: Timestamp) -> datetime:
    """The aware UTC datetime of a Timestamp."""
    return value.ToDatetime(tzinfo=UTC)


def date_to_proto(value: date | None) -> date_pb2.Date | None:
    """The Date of `value`; None for None."""
    return None if value is None else date_pb2.Date(year=value.year, month=value.month, day=value.day)


def date_from_proto(value: date_pb2.Date, field: str) -> date | None:
    """A calendar date; None when unset (all zero); INVALID_ARGUMENT when no such day exists."""
    if value.year == 0 and value.month == 0 and value.day == 0:
        return None
    try:
        return date(value.year, value.month, value.day)
    except ValueError:
        raise invalid_field(field, "is not a valid calendar date") from None


def duration_to_proto(value: timedelta) -> Duration:
    """The Duration of `value`."""
    duration = Duration()
    duration.FromTimedelta(value)
    return duration


def duration_from_proto(value: Duration, present: bool) -> timedelta | None:
    """A Duration field as a timedelta; None when the field is unset."""
    return value.ToTimedelta() if present else None


def money_to_decimal(money: money_pb2.Money) -> Decimal | None:
    """The amount of `money`; None when units and nanos disagree in sign."""
    if money.nanos and (money.units > 0 > money.nanos or money.units < 0 < money.nanos):
        return None
    return Decimal(money.units) + Decimal(money.nanos) / NANOS


def amount_from_proto(money: money_pb2.Money, field: str) -> Decimal:
    """The amount of a Money field; INVALID_ARGUMENT naming `field` when units and nanos disagree."""
    amount = money_to_decimal(money)
    if amount is None:
        raise invalid_field(field, "units and nanos must have the same sign")
    return amount


def decimal_to_money(value: Decimal, currency: str) -> money_pb2.Money:
    """A Money message of `value` in `currency` (sub-nano digits are cut)."""
    units = int(value)
    return money_pb2.Money(currency_code=currency, units=units, nanos=int((value - units) * NANOS))
