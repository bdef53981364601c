"""Amounts of money as whole minor units of a currency (tiyin, kopiyka, đồng), never floats, and the
currency of each market the operator sells in."""

from dataclasses import dataclass
from decimal import Decimal

# ISO 4217 minor-unit digits of the markets' currencies (and those a catalog may quote besides).
MINOR_DIGITS = {"UZS": 2, "UAH": 2, "VND": 0, "KZT": 2, "USD": 2, "EUR": 2}
MARKET_CURRENCY = {"UZ": "UZS", "UA": "UAH", "VN": "VND", "KZ": "KZT"}
"""The currency every price of a market is quoted in, by ISO 3166-1 alpha-2 country."""


@dataclass(frozen=True, order=True)
class Money:
    """An amount in whole minor units of `currency`; arithmetic refuses to mix currencies."""

    minor: int
    currency: str

    def __add__(self, other: "Money") -> "Money":
        return Money(self.minor + self._same(other).minor, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        return Money(self.minor - self._same(other).minor, self.currency)

    def times(self, units: int) -> "Money":
        """The amount of `units` units at this price."""
        return Money(self.minor * units, self.currency)

    def mean_of(self, count: int) -> "Money":
        """This total spread over `count` months, rounded half up to a whole minor unit."""
        return Money((2 * self.minor + count) // (2 * count), self.currency)

    def major(self) -> Decimal:
        """The amount in the currency's main unit (som, hryvnia, dong)."""
        return Decimal(self.minor).scaleb(-minor_digits(self.currency))

    def words(self) -> str:
        """The amount as people read it: "49 000 UZS", "12.50 UAH"."""
        digits = minor_digits(self.currency)
        whole, fraction = divmod(abs(self.minor), 10**digits)
        text = f"{whole:,}".replace(",", " ")
        if fraction:
            text += f".{fraction:0{digits}d}"
        return f"{'-' if self.minor < 0 else ''}{text} {self.currency}"

    def _same(self, other: "Money") -> "Money":
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")
        return other


def zero(currency: str) -> Money:
    """No money in `currency`."""
    return Money(0, currency)


def minor_digits(currency: str) -> int:
    """Digits after the decimal point of the currency's minor unit."""
    return MINOR_DIGITS[currency]


def minor_units(amount: Decimal, currency: str) -> int | None:
    """`amount` in whole minor units; None when it is finer than the minor unit."""
    scaled = amount.scaleb(minor_digits(currency))
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)
