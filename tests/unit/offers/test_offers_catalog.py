"""The catalog's rules: what an offering must hold, versions, retirement."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chassis.errors import Aborted, FailedPrecondition, InvalidArgument
from services.offers.catalog import Lifecycle, checked_offering, retired_offering, updated_offering
from services.offers.money import Money
from tests.unit.offers.plans import plan, som

NOW = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


def _fields(error: InvalidArgument) -> set[str]:
    return {violation.field for violation in error.violations}


def test_a_price_in_another_currency_than_the_markets_is_invalid():
    with pytest.raises(InvalidArgument) as raised:
        checked_offering(replace(plan(), price=Money(100, "UAH")))
    assert _fields(raised.value) == {"product_offering.price.currency_code"}


def test_every_bad_field_is_named_at_once():
    bad = replace(plan(), offering_id="Bad Id", display_name=" ", market="XX", regions=("",))
    with pytest.raises(InvalidArgument) as raised:
        checked_offering(bad)
    assert _fields(raised.value) == {
        "product_offering_id",
        "product_offering.display_name",
        "product_offering.market",
        "product_offering.regions",
    }


def test_an_update_writes_the_next_version_with_only_the_masked_fields():
    current = replace(plan(price=50_000), version=3)
    patch = replace(plan(price=45_000), display_name="Renamed")
    updated = updated_offering(current, patch, ["price"], expected_version=3, now=NOW)
    assert (updated.version, updated.price, updated.display_name) == (4, som(45_000), current.display_name)


def test_an_update_against_a_stale_version_is_aborted():
    with pytest.raises(Aborted):
        updated_offering(replace(plan(), version=2), plan(), ["price"], expected_version=1, now=NOW)


def test_a_retired_offering_is_not_on_sale_and_cannot_change():
    retired = retired_offering(plan(), expected_version=None, now=NOW)
    assert retired.lifecycle is Lifecycle.RETIRED and retired.version == 2
    assert not retired.on_sale(NOW)
    with pytest.raises(FailedPrecondition) as raised:
        updated_offering(retired, plan(), ["price"], expected_version=None, now=NOW)
    assert raised.value.reason == "OFFERING_RETIRED"


def test_an_offering_is_on_sale_only_within_its_validity():
    limited = replace(plan(), start_time=NOW, end_time=NOW + timedelta(days=30))
    assert not limited.on_sale(NOW - timedelta(seconds=1))
    assert limited.on_sale(NOW)
    assert not limited.on_sale(NOW + timedelta(days=30))
