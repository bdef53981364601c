"""What a valid customer profile is, how it is normalised, and how UpdateCustomer's field mask applies."""

from dataclasses import replace
from datetime import date, timedelta

import pytest

from chassis.errors import InvalidArgument
from services.customer.customers.lifecycle import CustomerStatus, initial_status
from services.customer.customers.profile import (
    Channel,
    ContactMedium,
    CustomerProfile,
    Gender,
    Individual,
    Organization,
    OrganizationKind,
    PostalAddress,
    ProfilePatch,
    apply_profile_update,
    normalized_profile,
)

TODAY = date(2024, 6, 1)


def _person(**changes: object) -> Individual:
    return replace(Individual(given_name="Gʻulom", family_name="Karimov"), **changes)


def _company(**changes: object) -> Organization:
    return replace(Organization(legal_name="Uzbek Telecom Retail LLC", kind=OrganizationKind.ENTERPRISE), **changes)


def _phone(number: str, *, preferred: bool = False) -> ContactMedium:
    return ContactMedium(phone_number=number, preferred=preferred)


def _email(address: str) -> ContactMedium:
    return ContactMedium(email_address=address)


def _address(country_code: str, *, preferred: bool = False, city: str = "Tashkent") -> ContactMedium:
    return ContactMedium(postal_address=PostalAddress(country_code=country_code, city=city), preferred=preferred)


def _normalized(profile: CustomerProfile, default_region: str = "UZ") -> CustomerProfile:
    return normalized_profile(profile, default_region=default_region, today=TODAY, path="customer")


def _violated_fields(profile: CustomerProfile, default_region: str = "UZ") -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        _normalized(profile, default_region)
    return [violation.field for violation in raised.value.violations]


# Normalisation -------------------------------------------------------------------------------------


def test_names_are_trimmed_and_inner_white_space_collapsed() -> None:
    profile = CustomerProfile(party=_person(given_name="  Nguyễn   Văn ", family_name=" An\t", middle_name="  Thị "))
    party = _normalized(profile).party
    assert isinstance(party, Individual)
    assert (party.given_name, party.middle_name, party.family_name) == ("Nguyễn Văn", "Thị", "An")


def test_names_are_stored_in_composed_unicode() -> None:
    decomposed = "Nguye\u0302\u0303n"  # e + combining circumflex + combining tilde
    party = _normalized(CustomerProfile(party=_person(given_name=decomposed))).party
    assert isinstance(party, Individual)
    assert party.given_name == "Nguyễn"


def test_phone_numbers_are_stored_in_e164() -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_phone("+998 90 123-45-67"),))
    assert _normalized(profile).phone_numbers == ["+998901234567"]


def test_email_domain_is_lower_cased() -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_email(" An.Nguyen@Example.COM "),))
    assert _normalized(profile).contact_media[0].email_address == "An.Nguyen@example.com"


def test_postal_country_code_is_upper_cased() -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_address("uz"),))
    address = _normalized(profile).home_address
    assert address is not None
    assert address.country_code == "UZ"


def test_organization_trading_name_is_cleaned_and_tax_id_trimmed() -> None:
    profile = CustomerProfile(party=_company(trading_name="  Mobi   Shop ", tax_id=" 301234567 "))
    party = _normalized(profile).party
    assert isinstance(party, Organization)
    assert (party.trading_name, party.tax_id) == ("Mobi Shop", "301234567")


@pytest.mark.parametrize("tag", ["uz", "uz-Latn", "uk-UA", "vi", "ru-Cyrl-UZ"])
def test_bcp47_language_tag_is_accepted(tag: str) -> None:
    party = _normalized(CustomerProfile(party=_person(preferred_language=tag))).party
    assert isinstance(party, Individual)
    assert party.preferred_language == tag


def test_birth_date_today_is_accepted() -> None:
    party = _normalized(CustomerProfile(party=_person(birth_date=TODAY))).party
    assert isinstance(party, Individual)
    assert party.birth_date == TODAY


# Phone region --------------------------------------------------------------------------------------


def test_phone_without_country_code_is_read_in_the_default_region_when_no_address() -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_phone("90 123 45 67"),))
    assert _normalized(profile, default_region="UZ").phone_numbers == ["+998901234567"]


def test_phone_without_country_code_is_read_in_the_postal_address_country() -> None:
    # A Ukrainian national number is not a valid Uzbek one; the address says which it is.
    profile = CustomerProfile(party=_person(), contact_media=(_phone("050 123 45 67"), _address("UA", city="Kyiv")))
    assert _normalized(profile, default_region="UZ").phone_numbers == ["+380501234567"]


def test_phone_region_comes_from_the_preferred_postal_address() -> None:
    media = (_address("UZ"), _address("ua", preferred=True, city="Kyiv"), _phone("050 123 45 67"))
    profile = CustomerProfile(party=_person(), contact_media=media)
    assert _normalized(profile, default_region="VN").phone_numbers == ["+380501234567"]


def test_phone_with_country_code_ignores_the_address_country() -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_phone("+998 90 123 45 67"), _address("UA")))
    assert _normalized(profile).phone_numbers == ["+998901234567"]


# Invalid input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("given_name", ["", "   ", "\t\n"])
def test_empty_given_name_is_invalid_argument_on_given_name(given_name: str) -> None:
    profile = CustomerProfile(party=_person(given_name=given_name))
    assert _violated_fields(profile) == ["customer.individual.given_name"]


def test_empty_family_name_is_invalid_argument_on_family_name() -> None:
    assert _violated_fields(CustomerProfile(party=_person(family_name=" "))) == ["customer.individual.family_name"]


def test_name_longer_than_200_characters_is_invalid_argument() -> None:
    profile = CustomerProfile(party=_person(given_name="A" * 201))
    assert _violated_fields(profile) == ["customer.individual.given_name"]


def test_future_birth_date_is_invalid_argument_on_birth_date() -> None:
    profile = CustomerProfile(party=_person(birth_date=TODAY + timedelta(days=1)))
    assert _violated_fields(profile) == ["customer.individual.birth_date"]


def test_birth_date_before_1900_is_invalid_argument_on_birth_date() -> None:
    profile = CustomerProfile(party=_person(birth_date=date(1899, 12, 31)))
    assert _violated_fields(profile) == ["customer.individual.birth_date"]


@pytest.mark.parametrize("email", ["not-an-email", "an@", "@example.com", "an nguyen@example.com"])
def test_malformed_email_is_invalid_argument_on_that_contact_medium(email: str) -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_phone("+998901234567"), _email(email)))
    assert _violated_fields(profile) == ["customer.contact_media[1].email_address"]


@pytest.mark.parametrize("phone", ["12345", "call me", "+998 90"])
def test_malformed_phone_is_invalid_argument_on_that_contact_medium(phone: str) -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_email("an@example.com"), _phone(phone)))
    assert _violated_fields(profile) == ["customer.contact_media[1].phone_number"]


@pytest.mark.parametrize("country_code", ["XX", "UZB", "1"])
def test_invalid_country_code_is_invalid_argument_on_postal_address_country_code(country_code: str) -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_address(country_code),))
    assert _violated_fields(profile) == ["customer.contact_media[0].postal_address.country_code"]


@pytest.mark.parametrize("tag", ["english", "u", "uz_Latn", "uz-", "ru Cyrl"])
def test_bad_language_tag_is_invalid_argument_on_preferred_language(tag: str) -> None:
    profile = CustomerProfile(party=_person(preferred_language=tag))
    assert _violated_fields(profile) == ["customer.individual.preferred_language"]


def test_organization_without_kind_is_invalid_argument_on_kind() -> None:
    assert _violated_fields(CustomerProfile(party=_company(kind=None))) == ["customer.organization.kind"]


def test_organization_without_legal_name_is_invalid_argument_on_legal_name() -> None:
    assert _violated_fields(CustomerProfile(party=_company(legal_name=""))) == ["customer.organization.legal_name"]


def test_contact_medium_with_nothing_set_is_invalid_argument_on_that_medium() -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_phone("+998901234567"), ContactMedium()))
    assert _violated_fields(profile) == ["customer.contact_media[1]"]


@pytest.mark.parametrize("retailer_id", ["shop 42", "-starts-with-dash", "x" * 129, "магазин"])
def test_malformed_retailer_id_is_invalid_argument_on_retailer_id(retailer_id: str) -> None:
    profile = CustomerProfile(party=_person(), retailer_id=retailer_id)
    assert _violated_fields(profile) == ["customer.retailer_id"]


def test_every_bad_field_is_reported_at_once() -> None:
    profile = CustomerProfile(
        party=_person(given_name="", birth_date=TODAY + timedelta(days=365), preferred_language="english"),
        contact_media=(_email("nobody@"), _phone("12"), _address("XX")),
        retailer_id="shop 42",
    )
    assert sorted(_violated_fields(profile)) == sorted(
        [
            "customer.individual.given_name",
            "customer.individual.birth_date",
            "customer.individual.preferred_language",
            "customer.contact_media[0].email_address",
            "customer.contact_media[1].phone_number",
            "customer.contact_media[2].postal_address.country_code",
            "customer.retailer_id",
        ]
    )


def test_violation_names_the_bad_value() -> None:
    profile = CustomerProfile(party=_person(), contact_media=(_phone("12"),))
    with pytest.raises(InvalidArgument) as raised:
        _normalized(profile)
    assert "'12'" in raised.value.violations[0].description


# initial_status ------------------------------------------------------------------------------------


def test_new_customer_without_a_requested_status_is_a_prospect() -> None:
    assert initial_status(None) is CustomerStatus.PROSPECT


@pytest.mark.parametrize("status", [CustomerStatus.PROSPECT, CustomerStatus.ACTIVE])
def test_new_customer_may_start_as_prospect_or_active(status: CustomerStatus) -> None:
    assert initial_status(status) is status


@pytest.mark.parametrize("status", [CustomerStatus.SUSPENDED, CustomerStatus.CHURNED])
def test_new_customer_cannot_start_suspended_or_churned(status: CustomerStatus) -> None:
    with pytest.raises(InvalidArgument) as raised:
        initial_status(status)
    assert [v.field for v in raised.value.violations] == ["customer.status"]


# apply_profile_update ------------------------------------------------------------------------------

CURRENT = CustomerProfile(
    party=Individual(given_name="Olena", family_name="Shevchenko", middle_name="Ivanivna", gender=Gender.FEMALE),
    contact_media=(ContactMedium(phone_number="+380501234567"),),
    acquisition_channel=Channel.RETAIL_SHOP,
    retailer_id="kyivstar-shop-7",
)
PATCH = ProfilePatch(
    party=Individual(given_name="Olha", family_name="Kovalenko"),
    contact_media=(ContactMedium(email_address="olha@example.com"),),
    acquisition_channel=Channel.APP,
    retailer_id="shop-9",
)


def _update_violations(current: CustomerProfile, patch: ProfilePatch, paths: list[str]) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        apply_profile_update(current, patch, paths)
    return [v.field for v in raised.value.violations]


def test_leaf_path_changes_only_that_field_of_the_party() -> None:
    updated = apply_profile_update(CURRENT, PATCH, ["individual.family_name"])
    assert updated.party == replace(CURRENT.party, family_name="Kovalenko")


def test_several_leaf_paths_change_each_named_field() -> None:
    updated = apply_profile_update(CURRENT, PATCH, ["individual.given_name", "individual.middle_name"])
    assert updated.party == replace(CURRENT.party, given_name="Olha", middle_name="")


def test_party_path_replaces_the_whole_party() -> None:
    updated = apply_profile_update(CURRENT, PATCH, ["individual"])
    assert updated.party == PATCH.party


def test_contact_media_path_replaces_every_contact_medium() -> None:
    updated = apply_profile_update(CURRENT, PATCH, ["contact_media"])
    assert updated.contact_media == PATCH.contact_media


@pytest.mark.parametrize("path", ["acquisition_channel", "retailer_id"])
def test_top_level_path_takes_that_value_from_the_patch(path: str) -> None:
    updated = apply_profile_update(CURRENT, PATCH, [path])
    assert getattr(updated, path) == getattr(PATCH, path)


def test_fields_not_named_in_the_mask_are_kept() -> None:
    updated = apply_profile_update(CURRENT, PATCH, ["retailer_id"])
    assert replace(updated, retailer_id=CURRENT.retailer_id) == CURRENT


def test_organization_leaf_path_changes_an_organization() -> None:
    company = CustomerProfile(party=_company())
    patch = ProfilePatch(party=_company(legal_name="New Name LLC", kind=OrganizationKind.SME))
    updated = apply_profile_update(company, patch, ["organization.kind"])
    assert updated.party == _company(kind=OrganizationKind.SME)


@pytest.mark.parametrize("path", ["status", "name", "churn_reason", "create_time", "updater", "etag"])
def test_read_only_path_is_invalid_argument_on_update_mask(path: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        apply_profile_update(CURRENT, PATCH, [path])
    [violation] = raised.value.violations
    assert violation.field == "update_mask"
    assert path in violation.description


def test_status_in_the_mask_points_to_change_customer_status() -> None:
    with pytest.raises(InvalidArgument) as raised:
        apply_profile_update(CURRENT, PATCH, ["status"])
    assert "ChangeCustomerStatus" in raised.value.violations[0].description


@pytest.mark.parametrize("path", ["nickname", "individual.nickname", "contact_media.phone_number", ""])
def test_unknown_path_is_invalid_argument_on_update_mask(path: str) -> None:
    assert _update_violations(CURRENT, PATCH, [path]) == ["update_mask"]


def test_empty_mask_is_invalid_argument_on_update_mask() -> None:
    assert _update_violations(CURRENT, PATCH, []) == ["update_mask"]


@pytest.mark.parametrize("path", ["organization", "organization.legal_name", "organization.kind"])
def test_organization_fields_of_an_individual_cannot_change(path: str) -> None:
    patch = replace(PATCH, party=_company())
    assert _update_violations(CURRENT, patch, [path]) == ["update_mask"]


def test_individual_fields_of_an_organization_cannot_change() -> None:
    company = CustomerProfile(party=_company())
    assert _update_violations(company, PATCH, ["individual.given_name"]) == ["update_mask"]


def test_party_path_without_that_party_in_the_request_is_invalid_argument() -> None:
    patch = replace(PATCH, party=None)
    assert _update_violations(CURRENT, patch, ["individual.given_name"]) == ["customer.individual"]


def test_every_bad_mask_path_is_reported_at_once() -> None:
    assert _update_violations(CURRENT, PATCH, ["status", "nickname", "individual.family_name"]) == [
        "update_mask",
        "update_mask",
    ]
