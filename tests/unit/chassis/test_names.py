"""Resource names built and parsed by one pattern: ids in the pattern's order, and a malformed name
INVALID_ARGUMENT naming the request field and the expected shape."""

import uuid

import pytest

from chassis.errors import InvalidArgument
from chassis.names import ResourcePattern

ENTRY = ResourcePattern("accounts/{account}/entries/{entry}")
ACCOUNT_ID = uuid.UUID("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b")


def test_a_name_is_the_pattern_with_its_ids_in_order() -> None:
    assert ENTRY.format(ACCOUNT_ID, 7) == f"accounts/{ACCOUNT_ID}/entries/7"
    assert ENTRY.variables == ("account", "entry")
    assert ResourcePattern("programs/current").format() == "programs/current"


def test_a_name_needs_exactly_one_id_per_variable() -> None:
    with pytest.raises(ValueError, match="takes 2 ids, got 1"):
        ENTRY.format(ACCOUNT_ID)


def test_parsing_gives_back_the_ids_it_was_built_from() -> None:
    assert ENTRY.parse(ENTRY.format(ACCOUNT_ID, 7)) == (str(ACCOUNT_ID), "7")
    assert ENTRY.parse_number(ENTRY.format(ACCOUNT_ID, 7)) == (ACCOUNT_ID, 7)


@pytest.mark.parametrize(
    "name",
    [
        f"accounts/{ACCOUNT_ID}",
        f"accounts/{ACCOUNT_ID}/entries/7/more",
        f"customers/{ACCOUNT_ID}/entries/7",
        f"accounts/{ACCOUNT_ID}/lots/7",
        "accounts//entries/7",
        "",
    ],
)
def test_a_name_of_another_shape_is_invalid_naming_the_field_and_the_shape(name: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        ENTRY.parse(name, field="entry")
    [violation] = refused.value.violations
    assert violation.field == "entry"
    assert "accounts/{account}/entries/{entry}" in violation.description
