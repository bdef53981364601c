"""The customer system of record's rules, in plain Python: what a valid customer, line and consent
decision is, how they are normalised, and which changes are allowed. No gRPC, no database."""

import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from chassis.errors import FailedPrecondition, Violations, invalid_field

MAX_NAME_LENGTH = 200
MIN_NAME_QUERY_LENGTH = 3
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/\-]{0,127}$")
# Apostrophe-like marks vanish from search keys: Uzbek "Gʻulom" is typed "G'ulom" or "Gulom".
_APOSTROPHES = dict.fromkeys(map(ord, "ʻʼ'`‘’ʹ′"), None)
# Letters that carry their mark in the base letter and so survive Unicode decomposition.
# Russian writes ё as е more often than not; search treats them alike.
_CYRILLIC_VARIANTS = str.maketrans({"ё": "е"})
_BASE_LETTERS = str.maketrans({"đ": "d", "ð": "d", "ø": "o", "ł": "l", "ı": "i", "ħ": "h", "ŧ": "t"})


class CustomerStatus(StrEnum):
    """Lifecycle of a customer."""

    PROSPECT = "PROSPECT"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    CHURNED = "CHURNED"


class ChurnReason(StrEnum):
    """Why a customer left."""

    PORTED_TO_COMPETITOR = "PORTED_TO_COMPETITOR"
    VOLUNTARY = "VOLUNTARY"
    NON_PAYMENT = "NON_PAYMENT"
    DECEASED = "DECEASED"
    OTHER = "OTHER"


class Gender(StrEnum):
    """Gender as declared by the customer."""

    FEMALE = "FEMALE"
    MALE = "MALE"
    OTHER = "OTHER"


class OrganizationKind(StrEnum):
    """Kind of organization."""

    ENTERPRISE = "ENTERPRISE"
    SME = "SME"
    GOVERNMENT = "GOVERNMENT"
    HOUSEHOLD = "HOUSEHOLD"


class Channel(StrEnum):
    """Touchpoint of a sign-up or a decision."""

    RETAIL_SHOP = "RETAIL_SHOP"
    WEB = "WEB"
    APP = "APP"
    CALL_CENTRE = "CALL_CENTRE"


class SubscriptionStatus(StrEnum):
    """Lifecycle of a line."""

    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"


class SubscriptionPurpose(StrEnum):
    """What a line is used for."""

    PERSONAL = "PERSONAL"
    BUSINESS = "BUSINESS"


class ConsentPurpose(StrEnum):
    """What a consent is asked for."""

    MARKETING = "MARKETING"
    PROFILING = "PROFILING"
    PARTNER_SHARING = "PARTNER_SHARING"


class ConsentDecision(StrEnum):
    """A decision on one purpose."""

    GRANTED = "GRANTED"
    DENIED = "DENIED"
    REVOKED = "REVOKED"


@dataclass(frozen=True)
class Individual:
    """A person."""

    given_name: str
    family_name: str
    middle_name: str = ""
    birth_date: date | None = None
    gender: Gender | None = None
    preferred_language: str = ""


@dataclass(frozen=True)
class Organization:
    """A company, public body or household account."""

    legal_name: str
    kind: OrganizationKind | None
    trading_name: str = ""
    tax_id: str = ""


@dataclass(frozen=True)
class PostalAddress:
    """A postal address."""

    country_code: str = ""
    region: str = ""
    city: str = ""
    address_lines: tuple[str, ...] = ()
    postal_code: str = ""


@dataclass(frozen=True)
class ContactMedium:
    """One way to reach a customer; exactly one of the three is set."""

    phone_number: str | None = None
    email_address: str | None = None
    postal_address: PostalAddress | None = None
    preferred: bool = False


Party = Individual | Organization


@dataclass(frozen=True)
class CustomerProfile:
    """What a customer says about themselves: the part of a customer callers write."""

    party: Party
    contact_media: tuple[ContactMedium, ...] = ()
    acquisition_channel: Channel | None = None
    retailer_id: str = ""

    @property
    def phone_numbers(self) -> list[str]:
        """E.164 numbers among the contact media, for search."""
        return [m.phone_number for m in self.contact_media if m.phone_number]

    @property
    def home_address(self) -> PostalAddress | None:
        """The preferred postal address, else the first one."""
        addresses = [m for m in self.contact_media if m.postal_address is not None]
        preferred = [m for m in addresses if m.preferred] or addresses
        return preferred[0].postal_address if preferred else None

    @property
    def display_name(self) -> str:
        """The name people see."""
        if isinstance(self.party, Individual):
            return " ".join(p for p in (self.party.given_name, self.party.middle_name, self.party.family_name) if p)
        return self.party.trading_name or self.party.legal_name

    @property
    def search_key(self) -> str:
        """All names folded for case- and diacritic-insensitive search."""
        if isinstance(self.party, Individual):
            names = (self.party.given_name, self.party.middle_name, self.party.family_name)
        else:
            names = (self.party.legal_name, self.party.trading_name)
        return fold(" ".join(n for n in names if n))


@dataclass(frozen=True)
class ProfilePatch:
    """New values for UpdateCustomer; only the fields its mask names are read."""

    party: Party | None
    contact_media: tuple[ContactMedium, ...] = ()
    acquisition_channel: Channel | None = None
    retailer_id: str = ""


@dataclass(frozen=True)
class Customer:
    """A customer as stored: the profile plus lifecycle and audit."""

    id: uuid.UUID
    profile: CustomerProfile
    status: CustomerStatus
    create_time: datetime
    creator: str
    update_time: datetime
    updater: str
    version: int = 1
    churn_reason: ChurnReason | None = None
    churn_detail: str = ""
    erase_time: datetime | None = None
    """When the customer's personal data was erased; None while it is kept."""


@dataclass(frozen=True)
class Subscription:
    """A mobile line of a customer."""

    id: uuid.UUID
    customer_id: uuid.UUID
    msisdn: str
    tariff_plan_id: str
    activation_date: date | None
    status: SubscriptionStatus
    purpose: SubscriptionPurpose | None
    home_region: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    version: int = 1


@dataclass(frozen=True)
class ConsentRecord:
    """One decision in a customer's consent history."""

    id: int
    customer_id: uuid.UUID
    purpose: ConsentPurpose
    decision: ConsentDecision
    channel: Channel
    record_time: datetime
    recorder: str


@dataclass(frozen=True)
class SearchCriteria:
    """Normalised search criteria; at least one is set."""

    phone_number: str = ""
    name_key: str = ""
    status: CustomerStatus | None = None
    region_key: str = ""
    retailer_id: str = ""

    def as_dict(self) -> dict[str, str | None]:
        """The criteria as plain values (for page-token binding)."""
        return {
            "phone_number": self.phone_number,
            "name_key": self.name_key,
            "status": self.status.value if self.status else None,
            "region_key": self.region_key,
            "retailer_id": self.retailer_id,
        }


@dataclass(frozen=True)
class StatusChange:
    """A requested lifecycle move."""

    status: CustomerStatus | None
    churn_reason: ChurnReason | None = None
    churn_detail: str = ""


# Text ----------------------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower-case, diacritic-free, apostrophe-free form of `text` with single spaces.

    "Nguyễn Văn An" -> "nguyen van an", "Gʻulom" -> "gulom", "Олександр" -> "олександр".
    """
    # Lower-case after decomposing too: compatibility forms such as "𝐀" or "ℌ" decompose to capitals.
    decomposed = unicodedata.normalize("NFKD", text.casefold()).casefold().translate(_BASE_LETTERS)
    kept: list[str] = []
    for char in decomposed:
        # Marks go from Latin letters (ễ -> e); Cyrillic й and ї are letters of their own and stay.
        if unicodedata.combining(char) and kept and not _is_cyrillic(kept[-1]):
            continue
        kept.append(char)
    composed = unicodedata.normalize("NFC", "".join(kept)).translate(_CYRILLIC_VARIANTS).translate(_APOSTROPHES)
    return " ".join(composed.split())


def _is_cyrillic(char: str) -> bool:
    return "\u0400" <= char <= "\u04ff"


def clean_text(text: str) -> str:
    """NFC-normalised text with surrounding and repeated white space removed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def normalize_phone(raw: str, default_region: str) -> str | None:
    """E.164 form of a phone number written in any common format, or None when it is not valid."""
    try:
        number = phonenumbers.parse(raw, default_region.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_country_code(code: str) -> bool:
    """Whether `code` is an ISO 3166-1 alpha-2 region known to the phone-number library."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS


# Customers -----------------------------------------------------------------------------------------


def normalized_profile(profile: CustomerProfile, *, default_region: str, today: date, path: str) -> CustomerProfile:
    """The profile with names, phones and emails normalised; InvalidArgument naming every bad field."""
    violations = Violations()
    party = _normalized_party(profile.party, today, f"{path}", violations)
    region = phone_region(profile, default_region)
    media = tuple(
        _normalized_medium(medium, region, f"{path}.contact_media[{index}]", violations)
        for index, medium in enumerate(profile.contact_media)
    )
    retailer_id = profile.retailer_id.strip()
    if retailer_id and not _REFERENCE_ID.fullmatch(retailer_id):
        violations.add(f"{path}.retailer_id", "must be 1 to 128 letters, digits or . _ : / -")
    violations.raise_if_any()
    return replace(profile, party=party, contact_media=media, retailer_id=retailer_id)


def phone_region(profile: CustomerProfile, default_region: str) -> str:
    """Numbers without a country code are read in the customer's own country, else the default."""
    address = profile.home_address
    if address is not None and is_country_code(address.country_code):
        return address.country_code.upper()
    return default_region


def _normalized_party(party: Party, today: date, path: str, violations: Violations) -> Party:
    if isinstance(party, Individual):
        base = f"{path}.individual"
        given = _required_name(party.given_name, f"{base}.given_name", violations)
        family = _required_name(party.family_name, f"{base}.family_name", violations)
        middle = clean_text(party.middle_name)
        if len(middle) > MAX_NAME_LENGTH:
            violations.add(f"{base}.middle_name", f"must be at most {MAX_NAME_LENGTH} characters")
        if party.birth_date is not None:
            if party.birth_date > today:
                violations.add(f"{base}.birth_date", "must not be in the future")
            elif party.birth_date < EARLIEST_BIRTH_DATE:
                violations.add(f"{base}.birth_date", f"must not be before {EARLIEST_BIRTH_DATE.isoformat()}")
        language = party.preferred_language.strip()
        if language and not _LANGUAGE_TAG.fullmatch(language):
            violations.add(f"{base}.preferred_language", "must be a BCP 47 language tag such as 'uz-Latn'")
        return replace(party, given_name=given, family_name=family, middle_name=middle, preferred_language=language)
    base = f"{path}.organization"
    legal = _required_name(party.legal_name, f"{base}.legal_name", violations)
    if party.kind is None:
        violations.add(f"{base}.kind", "is required")
    return replace(party, legal_name=legal, trading_name=clean_text(party.trading_name), tax_id=party.tax_id.strip())


def _required_name(name: str, path: str, violations: Violations) -> str:
    cleaned = clean_text(name)
    if not cleaned:
        violations.add(path, "must not be empty")
    elif len(cleaned) > MAX_NAME_LENGTH:
        violations.add(path, f"must be at most {MAX_NAME_LENGTH} characters")
    return cleaned


def _normalized_medium(medium: ContactMedium, region: str, path: str, violations: Violations) -> ContactMedium:
    if medium.phone_number is not None:
        e164 = normalize_phone(medium.phone_number, region)
        if e164 is None:
            violations.add(f"{path}.phone_number", f"{medium.phone_number!r} is not a valid phone number")
            return medium
        return replace(medium, phone_number=e164)
    if medium.email_address is not None:
        try:
            checked = validate_email(medium.email_address.strip(), check_deliverability=False)
        except EmailNotValidError as error:
            violations.add(f"{path}.email_address", str(error))
            return medium
        return replace(medium, email_address=checked.normalized)
    if medium.postal_address is not None:
        address = medium.postal_address
        if address.country_code and not is_country_code(address.country_code):
            violations.add(f"{path}.postal_address.country_code", "must be an ISO 3166-1 alpha-2 code")
        return replace(
            medium,
            postal_address=PostalAddress(
                country_code=address.country_code.strip().upper(),
                region=clean_text(address.region),
                city=clean_text(address.city),
                address_lines=tuple(clean_text(line) for line in address.address_lines if line.strip()),
                postal_code=address.postal_code.strip(),
            ),
        )
    violations.add(path, "must set one of phone_number, email_address, postal_address")
    return medium


def initial_status(requested: CustomerStatus | None) -> CustomerStatus:
    """A new customer starts as a prospect, or active when signed up with a line."""
    if requested is None:
        return CustomerStatus.PROSPECT
    if requested not in (CustomerStatus.PROSPECT, CustomerStatus.ACTIVE):
        raise invalid_field("customer.status", "a new customer must be PROSPECT or ACTIVE")
    return requested


# Paths of UpdateCustomer's mask, and the fields they reach.
INDIVIDUAL_FIELDS = ("given_name", "family_name", "middle_name", "birth_date", "gender", "preferred_language")
ORGANIZATION_FIELDS = ("legal_name", "trading_name", "tax_id", "kind")
_READ_ONLY_PATHS = {
    "name": "is the resource's identity",
    "status": "changes only with ChangeCustomerStatus",
    "churn_reason": "changes only with ChangeCustomerStatus",
    "churn_detail": "changes only with ChangeCustomerStatus",
    "create_time": "is output only",
    "creator": "is output only",
    "update_time": "is output only",
    "updater": "is output only",
    "etag": "is output only",
}


def apply_profile_update(current: CustomerProfile, patch: ProfilePatch, paths: Sequence[str]) -> CustomerProfile:
    """`current` with the fields named by `paths` taken from `patch` (AIP-134 field mask)."""
    if not paths:
        raise invalid_field("update_mask", "must name at least one field")
    violations = Violations()
    updated = current
    for path in paths:
        head, _, leaf = path.partition(".")
        if path in _READ_ONLY_PATHS:
            violations.add("update_mask", f"{path} {_READ_ONLY_PATHS[path]}")
        elif path in ("contact_media", "acquisition_channel", "retailer_id"):
            updated = replace(updated, **{path: getattr(patch, path)})
        elif head in ("individual", "organization"):
            updated = _update_party(updated, patch, head, leaf, violations)
        else:
            violations.add("update_mask", f"unknown field {path!r}")
    violations.raise_if_any()
    return updated


def _update_party(
    current: CustomerProfile, patch: ProfilePatch, kind: str, leaf: str, violations: Violations
) -> CustomerProfile:
    party_type = Individual if kind == "individual" else Organization
    allowed = INDIVIDUAL_FIELDS if kind == "individual" else ORGANIZATION_FIELDS
    if not isinstance(current.party, party_type):
        violations.add("update_mask", f"{kind} cannot be changed: the customer's kind is fixed at creation")
        return current
    if not isinstance(patch.party, party_type):
        violations.add(f"customer.{kind}", f"must be set to update {kind} fields")
        return current
    if not leaf:
        return replace(current, party=patch.party)
    if leaf not in allowed:
        violations.add("update_mask", f"unknown field {kind}.{leaf}")
        return current
    return replace(current, party=replace(current.party, **{leaf: getattr(patch.party, leaf)}))


# Which lifecycle moves are allowed; churned customers can be won back.
STATUS_TRANSITIONS: dict[CustomerStatus, frozenset[CustomerStatus]] = {
    CustomerStatus.PROSPECT: frozenset({CustomerStatus.ACTIVE, CustomerStatus.CHURNED}),
    CustomerStatus.ACTIVE: frozenset({CustomerStatus.SUSPENDED, CustomerStatus.CHURNED}),
    CustomerStatus.SUSPENDED: frozenset({CustomerStatus.ACTIVE, CustomerStatus.CHURNED}),
    CustomerStatus.CHURNED: frozenset({CustomerStatus.ACTIVE}),
}


def change_status(customer: Customer, change: StatusChange, *, actor: str, now: datetime) -> Customer:
    """The customer after a lifecycle move; a churn needs a reason, anything else must not have one."""
    violations = Violations()
    if change.status is None:
        violations.add("status", "is required")
    elif change.status is CustomerStatus.CHURNED and change.churn_reason is None:
        violations.add("churn_reason", "is required when the status is CHURNED")
    elif change.status is not CustomerStatus.CHURNED and (change.churn_reason or change.churn_detail):
        violations.add("churn_reason", "is allowed only when the status is CHURNED")
    violations.raise_if_any()
    assert change.status is not None
    if change.status not in STATUS_TRANSITIONS[customer.status]:
        raise FailedPrecondition(
            "STATUS_TRANSITION_NOT_ALLOWED",
            f"a {customer.status.value} customer cannot become {change.status.value}",
            {"from_status": customer.status.value, "to_status": change.status.value},
        )
    return replace(
        customer,
        status=change.status,
        churn_reason=change.churn_reason,
        churn_detail=clean_text(change.churn_detail),
        update_time=now,
        updater=actor,
        version=customer.version + 1,
    )


def search_criteria(
    *,
    phone_number: str,
    phone_region_code: str,
    name_query: str,
    status: CustomerStatus | None,
    region: str,
    retailer_id: str,
    default_region: str,
) -> SearchCriteria:
    """Validated, normalised search criteria."""
    violations = Violations()
    phone = ""
    if phone_region_code and not is_country_code(phone_region_code):
        violations.add("phone_region_code", "must be an ISO 3166-1 alpha-2 code")
    elif phone_number.strip():
        normalized = normalize_phone(phone_number, phone_region_code or default_region)
        if normalized is None:
            violations.add("phone_number", f"{phone_number!r} is not a valid phone number")
        phone = normalized or ""
    name_key = fold(name_query)
    if name_query and max((len(word) for word in name_key.split()), default=0) < MIN_NAME_QUERY_LENGTH:
        violations.add("name_query", f"must contain a word of at least {MIN_NAME_QUERY_LENGTH} letters")
    criteria = SearchCriteria(
        phone_number=phone,
        name_key=name_key,
        status=status,
        region_key=fold(region),
        retailer_id=retailer_id.strip(),
    )
    if not violations.items and not any(criteria.as_dict().values()):
        violations.add(
            "phone_number", "give at least one criterion: phone_number, name_query, status, region or retailer_id"
        )
    violations.raise_if_any()
    return criteria


# Subscriptions -------------------------------------------------------------------------------------

SUBSCRIPTION_UPDATABLE = ("tariff_plan_id", "status", "purpose", "home_region")


@dataclass(frozen=True)
class SubscriptionPatch:
    """New values for UpdateSubscription; only the fields its mask names are read."""

    tariff_plan_id: str = ""
    status: SubscriptionStatus | None = None
    purpose: SubscriptionPurpose | None = None
    home_region: str = ""


SUBSCRIPTION_TRANSITIONS: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    SubscriptionStatus.ACTIVE: frozenset({SubscriptionStatus.SUSPENDED, SubscriptionStatus.TERMINATED}),
    SubscriptionStatus.SUSPENDED: frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TERMINATED}),
    SubscriptionStatus.TERMINATED: frozenset(),
}


def normalized_subscription(
    subscription: Subscription, *, default_region: str, today: date, path: str = "subscription"
) -> Subscription:
    """The line with its MSISDN in E.164 and every field checked."""
    violations = Violations()
    msisdn = normalize_phone(subscription.msisdn, default_region) if subscription.msisdn.strip() else None
    if msisdn is None:
        violations.add(f"{path}.msisdn", f"{subscription.msisdn!r} is not a valid phone number")
    tariff = subscription.tariff_plan_id.strip()
    if not _REFERENCE_ID.fullmatch(tariff):
        violations.add(f"{path}.tariff_plan_id", "is required: 1 to 128 letters, digits or . _ : / -")
    if subscription.activation_date is None:
        violations.add(f"{path}.activation_date", "is required")
    elif subscription.activation_date > today:
        violations.add(f"{path}.activation_date", "must not be in the future")
    if subscription.purpose is None:
        violations.add(f"{path}.purpose", "is required")
    if subscription.status is SubscriptionStatus.TERMINATED:
        violations.add(f"{path}.status", "a new line cannot be TERMINATED")
    violations.raise_if_any()
    return replace(
        subscription, msisdn=msisdn or "", tariff_plan_id=tariff, home_region=clean_text(subscription.home_region)
    )


def ensure_customer_can_have_lines(customer: Customer) -> None:
    """A churned customer gets a line only after being won back (status ACTIVE again)."""
    if customer.status is CustomerStatus.CHURNED:
        raise FailedPrecondition(
            "CUSTOMER_CHURNED",
            "a churned customer cannot get a new line; reactivate the customer first",
            {"customer_status": customer.status.value},
        )


def apply_subscription_update(
    current: Subscription, patch: SubscriptionPatch, paths: Sequence[str], *, now: datetime
) -> Subscription:
    """`current` with the masked fields from `patch`; a terminated line stays terminated."""
    violations = Violations()
    if not paths:
        violations.add("update_mask", "must name at least one field")
    for path in paths:
        if path not in SUBSCRIPTION_UPDATABLE:
            violations.add("update_mask", f"{path!r} cannot be updated; updatable: {', '.join(SUBSCRIPTION_UPDATABLE)}")
    changes = {path: getattr(patch, path) for path in paths if path in SUBSCRIPTION_UPDATABLE}
    if "status" in changes and changes["status"] is None:
        violations.add("subscription.status", "is required when named in update_mask")
    if "purpose" in changes and changes["purpose"] is None:
        violations.add("subscription.purpose", "is required when named in update_mask")
    if "tariff_plan_id" in changes:
        changes["tariff_plan_id"] = changes["tariff_plan_id"].strip()
        if not _REFERENCE_ID.fullmatch(changes["tariff_plan_id"]):
            violations.add("subscription.tariff_plan_id", "is required: 1 to 128 letters, digits or . _ : / -")
    if "home_region" in changes:
        changes["home_region"] = clean_text(changes["home_region"])
    violations.raise_if_any()
    if current.status is SubscriptionStatus.TERMINATED:
        raise FailedPrecondition("SUBSCRIPTION_TERMINATED", "a terminated line cannot change")
    new_status = changes.get("status", current.status)
    if new_status is not current.status and new_status not in SUBSCRIPTION_TRANSITIONS[current.status]:
        raise FailedPrecondition(
            "SUBSCRIPTION_TRANSITION_NOT_ALLOWED",
            f"a {current.status.value} line cannot become {new_status.value}",
            {"from_status": current.status.value, "to_status": new_status.value},
        )
    return replace(current, **changes, update_time=now, version=current.version + 1)


def ensure_deletable(subscriptions: Iterable[Subscription]) -> None:
    """A customer with a line still in service cannot be deleted."""
    live = [s for s in subscriptions if s.status is not SubscriptionStatus.TERMINATED]
    if live:
        raise FailedPrecondition(
            "CUSTOMER_HAS_LINES",
            f"the customer still has {len(live)} line(s) in service; terminate them first",
            {"live_lines": str(len(live))},
        )


# Consent -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentRequest:
    """A decision to record."""

    purpose: ConsentPurpose | None
    decision: ConsentDecision | None
    channel: Channel | None


@dataclass(frozen=True)
class PurposeState:
    """The current state of one purpose."""

    purpose: ConsentPurpose
    latest: ConsentRecord | None = None

    @property
    def permitted(self) -> bool:
        """Whether the operator may act for this purpose now."""
        return self.latest is not None and self.latest.decision is ConsentDecision.GRANTED


@dataclass(frozen=True)
class ConsentState:
    """The current state of every purpose, derived from the history."""

    purposes: list[PurposeState] = field(default_factory=list)


def check_consent_request(request: ConsentRequest, current: PurposeState | None) -> None:
    """A decision needs a purpose, a decision and a channel; only a granted purpose can be revoked."""
    violations = Violations()
    if request.purpose is None:
        violations.add("purpose", "is required")
    if request.decision is None:
        violations.add("decision", "is required")
    if request.channel is None:
        violations.add("channel", "is required")
    violations.raise_if_any()
    if request.decision is ConsentDecision.REVOKED and (current is None or not current.permitted):
        raise FailedPrecondition(
            "CONSENT_NOT_GRANTED",
            f"{request.purpose} is not granted, so there is nothing to revoke",
            {"purpose": str(request.purpose)},
        )


def consent_state(latest_records: Iterable[ConsentRecord]) -> ConsentState:
    """One entry per purpose in purpose order, from the latest record of each purpose."""
    latest = {record.purpose: record for record in latest_records}
    return ConsentState([PurposeState(purpose, latest.get(purpose)) for purpose in ConsentPurpose])


# Erasure (right to be forgotten) -------------------------------------------------------------------
#
# An erased customer stays as a shell so that counts, lines and consent proofs still add up: the row,
# its status, churn reason, timestamps, acquisition channel and retailer stay; every name becomes
# ERASED_NAME (an individual's given and family name, an organization's legal name) and everything
# else that describes the person goes (middle name, birth date, gender, language, trading name, tax
# id, contact media, churn detail). Lines keep tariff, status, purpose, region and activation date;
# their number is removed (empty). Consent records keep purpose, decision, channel, time and the
# recording employee, which is what proves a decision. An erased customer cannot be changed again.

ERASED_NAME = "erased"


def ensure_erasable(subscriptions: Iterable[Subscription]) -> None:
    """A customer with a line in service is still served under contract and cannot be erased."""
    live = [s for s in subscriptions if s.status is not SubscriptionStatus.TERMINATED]
    if live:
        raise FailedPrecondition(
            "CUSTOMER_HAS_LINES",
            f"the customer still has {len(live)} line(s) in service; terminate them before erasing",
            {"live_lines": str(len(live))},
        )


def ensure_not_erased(customer: Customer) -> None:
    """An erased customer is a shell that no change may fill with personal data again."""
    if customer.erase_time is not None:
        raise FailedPrecondition(
            "CUSTOMER_ERASED",
            "the customer's personal data was erased; a returning person is a new customer",
            {"erase_time": customer.erase_time.isoformat()},
        )


def erased_customer(customer: Customer, *, actor: str, now: datetime) -> Customer:
    """The shell that remains of `customer` after erasure."""
    party: Party
    if isinstance(customer.profile.party, Individual):
        party = Individual(given_name=ERASED_NAME, family_name=ERASED_NAME)
    else:
        party = Organization(legal_name=ERASED_NAME, kind=customer.profile.party.kind)
    profile = CustomerProfile(
        party=party,
        acquisition_channel=customer.profile.acquisition_channel,
        retailer_id=customer.profile.retailer_id,
    )
    return replace(
        customer,
        profile=profile,
        churn_detail="",
        update_time=now,
        updater=actor,
        version=customer.version + 1,
        erase_time=now,
    )


def erased_subscription(subscription: Subscription, *, now: datetime) -> Subscription:
    """The line without its number, the one thing on it that points at a person."""
    return replace(subscription, msisdn="", update_time=now, version=subscription.version + 1)
