"""The catalog's offerings (TMF620): tariff plans and add-on bundles with their prices, allowances,
overage rates, the radio technology they need, where and when they are sold, and their lifecycle.
Every change is a new version; what a customer accepts names the version."""

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum, StrEnum

from chassis.errors import FailedPrecondition, Violations, etag_mismatch
from services.offers.money import MARKET_CURRENCY, Money

OFFERING_ID = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MAX_REGIONS = 200
MAX_TEXT = 2000


class OfferingKind(StrEnum):
    """A tariff plan (what a line is on) or an add-on bundle (bought on top of one)."""

    TARIFF_PLAN = "TARIFF_PLAN"
    ADD_ON_BUNDLE = "ADD_ON_BUNDLE"


COLLECTIONS = {OfferingKind.TARIFF_PLAN: "plans", OfferingKind.ADD_ON_BUNDLE: "bundles"}
"""The collection of an offering's name, by kind."""


class PriceModel(StrEnum):
    """How the recurring price is charged in a month."""

    MONTHLY = "MONTHLY"
    PER_CALENDAR_DAY = "PER_CALENDAR_DAY"
    PER_DAY_OF_USE = "PER_DAY_OF_USE"


class Lifecycle(StrEnum):
    """On sale, or withdrawn."""

    ACTIVE = "ACTIVE"
    RETIRED = "RETIRED"


class Technology(IntEnum):
    """Radio access technologies, in the order of what they can carry (numbers as in the contract)."""

    UNSPECIFIED = 0
    G2 = 1
    G3 = 2
    G4 = 3
    G5 = 4

    @property
    def label(self) -> str:
        """ "2G", "4G"... for people."""
        return "any technology" if self is Technology.UNSPECIFIED else f"{self.value + 1}G"


@dataclass(frozen=True)
class Allowance:
    """What a price includes of one item in a month."""

    amount: int = 0
    unlimited: bool = False

    def beyond(self, used: int) -> int:
        """Units of `used` that the allowance does not include."""
        return 0 if self.unlimited else max(0, used - self.amount)


@dataclass(frozen=True)
class Allowances:
    """What a price includes in a calendar month."""

    on_net_minutes: Allowance = Allowance()
    off_net_minutes: Allowance = Allowance()
    sms: Allowance = Allowance()
    data_mb: Allowance = Allowance()


@dataclass(frozen=True)
class OverageRates:
    """Price of one unit beyond each allowance, in minor units of the offering's currency."""

    on_net_minute: int = 0
    off_net_minute: int = 0
    sms: int = 0
    data_mb: int = 0


@dataclass(frozen=True)
class Offering:
    """One version of a tariff plan or bundle."""

    kind: OfferingKind
    offering_id: str
    display_name: str
    market: str
    price_model: PriceModel
    price: Money
    description: str = ""
    allowances: Allowances = Allowances()
    overage: OverageRates = OverageRates()
    required_technology: Technology = Technology.UNSPECIFIED
    regions: tuple[str, ...] = ()
    start_time: datetime | None = None
    end_time: datetime | None = None
    lifecycle: Lifecycle = Lifecycle.ACTIVE
    promoted: bool = False
    version: int = 1
    create_time: datetime | None = None
    update_time: datetime | None = None
    retire_time: datetime | None = None

    @property
    def name(self) -> str:
        """`plans/{plan}` or `bundles/{bundle}`."""
        return f"{COLLECTIONS[self.kind]}/{self.offering_id}"

    @property
    def currency(self) -> str:
        """The currency of its prices."""
        return self.price.currency

    def rate(self, unit_price: int) -> Money:
        """An overage rate of the offering as money."""
        return Money(unit_price, self.currency)

    def on_sale(self, now: datetime) -> bool:
        """Whether it is sold at `now`: active and within its validity."""
        if self.lifecycle is not Lifecycle.ACTIVE:
            return False
        return (self.start_time is None or self.start_time <= now) and (self.end_time is None or now < self.end_time)


UPDATABLE_FIELDS = (
    "display_name",
    "description",
    "price_model",
    "price",
    "allowances",
    "overage_rates",
    "required_technology",
    "regions",
    "start_time",
    "end_time",
    "promoted",
)
_ATTRIBUTE = {"overage_rates": "overage"}


def checked_offering(offering: Offering, path: str = "product_offering") -> Offering:
    """The offering with its texts trimmed, after checking every field; INVALID_ARGUMENT naming each bad one."""
    violations = Violations()
    if not OFFERING_ID.fullmatch(offering.offering_id):
        violations.add("product_offering_id", "must be 1 to 63 lower-case letters, digits or dashes, from a letter")
    display_name = offering.display_name.strip()
    if not display_name or len(display_name) > 200:
        violations.add(f"{path}.display_name", "is required, at most 200 characters")
    if len(offering.description) > MAX_TEXT:
        violations.add(f"{path}.description", f"must be at most {MAX_TEXT} characters")
    currency = MARKET_CURRENCY.get(offering.market)
    if currency is None:
        violations.add(f"{path}.market", f"must be one of {', '.join(sorted(MARKET_CURRENCY))}")
    elif offering.price.currency != currency:
        violations.add(f"{path}.price.currency_code", f"must be {currency}, the currency of market {offering.market}")
    if offering.price.minor <= 0:
        violations.add(f"{path}.price", "must be positive")
    for item in ("on_net_minutes", "off_net_minutes", "sms", "data_mb"):
        if getattr(offering.allowances, item).amount < 0:
            violations.add(f"{path}.allowances.{item}", "must not be negative")
    for item in ("on_net_minute", "off_net_minute", "sms", "data_mb"):
        if getattr(offering.overage, item) < 0:
            violations.add(f"{path}.overage_rates.{item}", "must not be negative")
    regions = tuple(region.strip() for region in offering.regions)
    if len(regions) > MAX_REGIONS or any(not region or len(region) > 200 for region in regions):
        violations.add(f"{path}.regions", f"at most {MAX_REGIONS} regions, each 1 to 200 characters")
    if offering.start_time and offering.end_time and offering.end_time <= offering.start_time:
        violations.add(f"{path}.end_time", "must be after start_time")
    violations.raise_if_any()
    return replace(offering, display_name=display_name, description=offering.description.strip(), regions=regions)


def updated_offering(
    current: Offering, patch: Offering, paths: list[str], *, expected_version: int | None, now: datetime
) -> Offering:
    """The next version of `current` with the fields named in `paths` taken from `patch`."""
    violations = Violations()
    if not paths:
        violations.add("update_mask", "must name at least one field")
    for path in paths:
        if path not in UPDATABLE_FIELDS:
            violations.add("update_mask", f"{path!r} cannot be updated; updatable: {', '.join(UPDATABLE_FIELDS)}")
    violations.raise_if_any()
    ensure_not_retired(current)
    ensure_version(current, expected_version)
    changes = {_ATTRIBUTE.get(path, path): getattr(patch, _ATTRIBUTE.get(path, path)) for path in paths}
    changed = checked_offering(replace(current, **changes))
    return replace(changed, version=current.version + 1, update_time=now)


def retired_offering(current: Offering, *, expected_version: int | None, now: datetime) -> Offering:
    """The version of `current` that withdraws it from sale."""
    ensure_not_retired(current)
    ensure_version(current, expected_version)
    return replace(current, lifecycle=Lifecycle.RETIRED, version=current.version + 1, update_time=now, retire_time=now)


def ensure_not_retired(offering: Offering) -> None:
    """FAILED_PRECONDITION OFFERING_RETIRED when `offering` is retired: a retired offering stays as it was."""
    if offering.lifecycle is Lifecycle.RETIRED:
        raise FailedPrecondition(
            "OFFERING_RETIRED", f"{offering.name} is retired and cannot change", {"resource_name": offering.name}
        )


def ensure_version(offering: Offering, expected_version: int | None) -> None:
    """ABORTED ETAG_MISMATCH when the caller read another version."""
    if expected_version is not None and expected_version != offering.version:
        raise etag_mismatch(offering.name)
