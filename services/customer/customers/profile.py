"""A customer's profile, the part of a customer that callers write: the party (a person or an
organization), contact media, acquisition channel and retailer; how it is normalised and checked, and
how UpdateCustomer's field mask applies to it."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email

from chassis.errors import Violations, invalid_field
from services.customer.customers.text import clean_text, fold, is_reference_id
from services.customer.phone_numbers import is_country_code, normalize_phone

MAX_NAME_LENGTH = 200
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


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
    EMAIL = "EMAIL"
    SOCIAL = "SOCIAL"


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
        names: tuple[str, ...]
        if isinstance(self.party, Individual):
            names = (self.party.given_name, self.party.middle_name, self.party.family_name)
        else:
            names = (self.party.legal_name, self.party.trading_name)
        return fold(" ".join(n for n in names if n))

    @property
    def region_key(self) -> str:
        """The home region folded, for search by region ("" without a postal address)."""
        address = self.home_address
        return fold(address.region) if address else ""


@dataclass(frozen=True)
class ProfilePatch:
    """New values for UpdateCustomer; only the fields its mask names are read."""

    party: Party | None
    contact_media: tuple[ContactMedium, ...] = ()
    acquisition_channel: Channel | None = None
    retailer_id: str = ""


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
    if retailer_id and not is_reference_id(retailer_id):
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
