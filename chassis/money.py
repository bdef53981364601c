"""`google.type.Money` to `Decimal` and back, exactly (units plus nanos)."""

from decimal import Decimal

from google.type import money_pb2

NANOS = Decimal(1_000_000_000)


def money_to_decimal(money: money_pb2.Money) -> Decimal | None:
    """The amount of `money`; None when units and nanos disagree in sign."""
    if money.nanos and (money.units > 0 > money.nanos or money.units < 0 < money.nanos):
        return None
    return Decimal(money.units) + Decimal(money.nanos) / NANOS


def decimal_to_money(value: Decimal, currency: str) -> money_pb2.Money:
    """A Money message of `value` in `currency` (sub-nano digits are cut)."""
    units = int(value)
    return money_pb2.Money(currency_code=currency, units=units, nanos=int((value - units) * NANOS))
