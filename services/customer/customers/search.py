"""Customer search: which criteria a search takes, normalised (phone numbers in E.164, names and
regions folded), with every bad field named."""

from dataclasses import dataclass

from chassis.errors import Violations
from services.customer.customers.lifecycle import CustomerStatus
from services.customer.customers.text import fold
from services.customer.phone_numbers import is_country_code, normalize_phone

MIN_NAME_QUERY_LENGTH = 3


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
