"""Search criteria: at least one criterion, names folded, phone numbers normalised, every bad field named."""

import pytest

from chassis.errors import InvalidArgument
from services.customer.customers.lifecycle import CustomerStatus
from services.customer.customers.search import SearchCriteria, search_criteria


def _criteria(
    *,
    phone_number: str = "",
    phone_region_code: str = "",
    name_query: str = "",
    status: CustomerStatus | None = None,
    region: str = "",
    retailer_id: str = "",
    default_region: str = "UZ",
) -> SearchCriteria:
    return search_criteria(
        phone_number=phone_number,
        phone_region_code=phone_region_code,
        name_query=name_query,
        status=status,
        region=region,
        retailer_id=retailer_id,
        default_region=default_region,
    )


def _violated_fields(**criteria: str) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        _criteria(**criteria)
    return [v.field for v in raised.value.violations]


def test_no_criterion_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as raised:
        _criteria()
    [violation] = raised.value.violations
    assert "at least one criterion" in violation.description


def test_blank_criteria_count_as_no_criterion() -> None:
    with pytest.raises(InvalidArgument):
        _criteria(phone_number="   ", region=" \t", retailer_id="  ")


def test_status_alone_is_enough() -> None:
    assert _criteria(status=CustomerStatus.SUSPENDED).status is CustomerStatus.SUSPENDED


@pytest.mark.parametrize("name_query", ["An", "a", "A n", "G'u", "ʻʻʻ"])
def test_name_query_under_three_letters_is_invalid_argument_on_name_query(name_query: str) -> None:
    assert _violated_fields(name_query=name_query) == ["name_query"]


def test_name_query_of_short_words_only_is_invalid_argument_on_name_query() -> None:
    # Words shorter than three letters match too many names to narrow a search of millions.
    assert _violated_fields(name_query="An Li") == ["name_query"]


def test_name_query_with_one_word_of_three_letters_is_accepted() -> None:
    assert _criteria(name_query="Li Nguyễn").name_key == "li nguyen"


def test_three_letter_name_query_is_accepted() -> None:
    assert _criteria(name_query="Ali").name_key == "ali"


def test_name_query_is_folded_like_stored_names() -> None:
    assert _criteria(name_query="  NGUYỄN   Văn ").name_key == "nguyen van"


def test_uzbek_name_query_matches_whatever_apostrophe_was_typed() -> None:
    assert _criteria(name_query="Gʻulom").name_key == _criteria(name_query="G'ulom").name_key == "gulom"


def test_phone_number_is_normalised_in_the_default_region() -> None:
    assert _criteria(phone_number="90 123 45 67", default_region="UZ").phone_number == "+998901234567"


def test_phone_region_code_overrides_the_default_region() -> None:
    criteria = _criteria(phone_number="050 123 45 67", phone_region_code="UA", default_region="UZ")
    assert criteria.phone_number == "+380501234567"


def test_e164_phone_number_needs_no_region() -> None:
    assert _criteria(phone_number="+380 50 123 45 67", default_region="UZ").phone_number == "+380501234567"


@pytest.mark.parametrize("phone_number", ["12", "not a phone", "+998 90"])
def test_invalid_phone_number_is_invalid_argument_on_phone_number(phone_number: str) -> None:
    assert _violated_fields(phone_number=phone_number) == ["phone_number"]


@pytest.mark.parametrize("code", ["XX", "UKR", "1"])
def test_unknown_phone_region_code_is_invalid_argument_on_phone_region_code(code: str) -> None:
    assert _violated_fields(phone_number="050 123 45 67", phone_region_code=code) == ["phone_region_code"]


def test_region_is_folded() -> None:
    assert _criteria(region="Toshkent  Viloyati").region_key == "toshkent viloyati"


def test_retailer_id_is_trimmed() -> None:
    assert _criteria(retailer_id=" kyivstar-shop-7 ").retailer_id == "kyivstar-shop-7"


def test_every_bad_criterion_is_reported_at_once() -> None:
    assert sorted(_violated_fields(phone_number="12", name_query="An")) == ["name_query", "phone_number"]


def test_equal_searches_give_equal_criteria_for_page_tokens() -> None:
    # Page tokens bind to as_dict(); the same search typed differently must give the same criteria.
    first = _criteria(phone_number="+998 90 123-45-67", name_query="GʻULOM")
    second = _criteria(phone_number="90 123 45 67", name_query="g'ulom")
    assert first.as_dict() == second.as_dict()
