"""Search keys and phone numbers: names match whatever the case, diacritics or apostrophes, and
phone numbers are stored in E.164 whatever way they were written."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.customer.customers.text import fold
from services.customer.phone_numbers import is_country_code, normalize_phone

# fold ----------------------------------------------------------------------------------------------


def test_fold_drops_vietnamese_diacritics_and_case() -> None:
    assert fold("Nguyễn Văn An") == "nguyen van an"


def test_fold_finds_the_plain_name_inside_a_vietnamese_full_name() -> None:
    assert "nguyen" in fold("Nguyễn Văn An").split()


@pytest.mark.parametrize("spelling", ["Gʻulom", "G'ulom", "G’ulom", "Gʼulom", "G`ulom", "Gulom", "GʻULOM"])
def test_fold_treats_uzbek_okina_typed_apostrophe_and_no_mark_alike(spelling: str) -> None:
    assert fold(spelling) == "gulom"


def test_fold_ignores_cyrillic_case() -> None:
    assert fold("ОЛЕКСАНДР") == fold("олександр") == "олександр"


def test_fold_turns_stroked_d_into_plain_d() -> None:
    assert fold("Đặng") == "dang"


def test_fold_collapses_and_trims_white_space() -> None:
    assert fold("  Anna \t\n  Maria  ") == "anna maria"


def test_fold_of_styled_letters_matches_the_plain_name() -> None:
    # Names pasted from social media often arrive in "bold" mathematical letters.
    assert fold("𝐀𝐥𝐢") == fold("Ali") == "ali"


@given(st.text())
@example("𝐀")
@example("ℌ")
def test_fold_is_idempotent(text: str) -> None:
    once = fold(text)
    assert fold(once) == once


@given(st.text())
def test_fold_ignores_letter_case(text: str) -> None:
    assert fold(text.upper()) == fold(text)
    assert fold(text.lower()) == fold(text)


@given(st.text())
def test_fold_leaves_no_repeated_leading_or_trailing_space(text: str) -> None:
    folded = fold(text)
    assert folded == folded.strip()
    assert "  " not in folded


# normalize_phone -----------------------------------------------------------------------------------


def test_international_number_with_spaces_and_dashes_becomes_e164() -> None:
    assert normalize_phone("+998 90 123-45-67", "UZ") == "+998901234567"


def test_national_number_is_read_in_the_given_region() -> None:
    assert normalize_phone("0501234567", "UA") == "+380501234567"


def test_region_code_is_case_insensitive() -> None:
    assert normalize_phone("0501234567", "ua") == "+380501234567"


def test_e164_number_needs_no_region() -> None:
    assert normalize_phone("+380501234567", "") == "+380501234567"


def test_e164_number_keeps_its_own_country_whatever_the_region() -> None:
    assert normalize_phone("+380501234567", "UZ") == "+380501234567"


def test_national_number_without_a_region_is_not_valid() -> None:
    assert normalize_phone("0501234567", "") is None


@pytest.mark.parametrize("garbage", ["", "call me", "+", "not a phone", "☎☎☎"])
def test_text_that_is_not_a_phone_number_gives_none(garbage: str) -> None:
    assert normalize_phone(garbage, "UZ") is None


@pytest.mark.parametrize("too_short", ["+99890", "+998 90 123", "12"])
def test_too_short_number_gives_none(too_short: str) -> None:
    assert normalize_phone(too_short, "UZ") is None


# is_country_code -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["UZ", "ua", "Vn"])
def test_known_region_is_a_country_code_in_any_case(code: str) -> None:
    assert is_country_code(code)


@pytest.mark.parametrize("code", ["", "XX", "UZB", "U"])
def test_unknown_region_is_not_a_country_code(code: str) -> None:
    assert not is_country_code(code)
