"""AIP-158 pagination: page sizes are capped, and a page token only continues the query it came from."""

import base64
import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chassis.errors import InvalidArgument
from chassis.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Criteria,
    SortKey,
    next_page_token,
    read_page_request,
)

CRITERIA: Criteria = {"name_key": "gulom", "status": "ACTIVE", "phone_number": ""}


def _violated_field(page_size: int, page_token: str, criteria: Criteria) -> str:
    with pytest.raises(InvalidArgument) as raised:
        read_page_request(page_size, page_token, criteria)
    [violation] = raised.value.violations
    return violation.field


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


# Page size -----------------------------------------------------------------------------------------


def test_page_size_zero_gives_the_default_size() -> None:
    assert read_page_request(0, "", CRITERIA).size == DEFAULT_PAGE_SIZE


@pytest.mark.parametrize("page_size", [1, 20, MAX_PAGE_SIZE])
def test_page_size_up_to_the_cap_is_kept(page_size: int) -> None:
    assert read_page_request(page_size, "", CRITERIA).size == page_size


@pytest.mark.parametrize("page_size", [MAX_PAGE_SIZE + 1, 10_000])
def test_page_size_over_the_cap_is_invalid_argument_on_page_size(page_size: int) -> None:
    assert _violated_field(page_size, "", CRITERIA) == "page_size"


@pytest.mark.parametrize("page_size", [-1, -50])
def test_negative_page_size_is_invalid_argument_on_page_size(page_size: int) -> None:
    assert _violated_field(page_size, "", CRITERIA) == "page_size"


def test_the_cap_is_500() -> None:
    assert MAX_PAGE_SIZE == 500


# Page token ----------------------------------------------------------------------------------------


def test_first_page_starts_at_the_beginning() -> None:
    assert read_page_request(10, "", CRITERIA).after is None


def test_token_continues_after_the_last_sort_key() -> None:
    token = next_page_token(["2024-06-01T12:00:00Z", 17], CRITERIA)
    assert read_page_request(10, token, CRITERIA).after == ["2024-06-01T12:00:00Z", 17]


def test_token_keeps_the_page_size_of_the_next_call() -> None:
    token = next_page_token(["a"], CRITERIA)
    assert read_page_request(7, token, CRITERIA).size == 7


def test_token_is_url_safe_text() -> None:
    token = next_page_token(["Nguyễn/Văn+An?", 1], CRITERIA)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


def test_token_accepts_the_same_criteria_in_another_order() -> None:
    token = next_page_token(["a"], {"status": "ACTIVE", "name_key": "gulom", "phone_number": ""})
    assert read_page_request(10, token, CRITERIA).after == ["a"]


@pytest.mark.parametrize(
    "other",
    [
        {**CRITERIA, "name_key": "olena"},
        {**CRITERIA, "status": None},
        {"name_key": "gulom", "status": "ACTIVE"},
        {**CRITERIA, "retailer_id": "shop-1"},
        {},
    ],
)
def test_token_used_with_other_criteria_is_invalid_argument_on_page_token(other: Criteria) -> None:
    token = next_page_token(["a"], CRITERIA)
    assert _violated_field(10, token, other) == "page_token"


def test_token_of_a_parent_is_refused_for_another_parent() -> None:
    token = next_page_token([42], {"parent": "customers/1"})
    assert _violated_field(10, token, {"parent": "customers/2"}) == "page_token"


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "!!!!",
        "токен",
        _b64(b"not json"),
        _b64(b"\xff\xfe\x00"),
        _b64(b"[1, 2]"),
        _b64(b'"after"'),
        _b64(b"42"),
        _b64(b'{"after": ["a"]}'),
        _b64(b'{"criteria": "0123456789abcdef"}'),
    ],
)
def test_garbage_token_is_invalid_argument_on_page_token(token: str) -> None:
    assert _violated_field(10, token, CRITERIA) == "page_token"


def test_token_whose_sort_key_is_not_a_list_is_invalid_argument_on_page_token() -> None:
    genuine = json.loads(base64.urlsafe_b64decode(next_page_token(["a"], CRITERIA)))
    forged = _b64(json.dumps({**genuine, "after": "a"}).encode())
    assert _violated_field(10, forged, CRITERIA) == "page_token"


def test_deeply_nested_token_is_invalid_argument_on_page_token() -> None:
    # A client controls the token; no shape of it may surface as anything but INVALID_ARGUMENT.
    assert _violated_field(10, _b64(b"[" * 100_000), CRITERIA) == "page_token"


@given(st.text(max_size=200))
def test_arbitrary_text_is_either_refused_or_decoded_as_a_list(token: str) -> None:
    try:
        page = read_page_request(10, token, CRITERIA)
    except InvalidArgument as error:
        assert [v.field for v in error.violations] == ["page_token"]
    else:
        assert page.after is None or isinstance(page.after, list)


# Properties ----------------------------------------------------------------------------------------

sort_keys = st.lists(st.one_of(st.text(), st.integers()), max_size=5)
criteria_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
criteria_maps = st.dictionaries(st.text(max_size=12), criteria_values, max_size=5)


@given(sort_keys, criteria_maps)
def test_any_sort_key_round_trips_through_a_token(
    last_key: SortKey, criteria: dict[str, str | int | bool | None]
) -> None:
    token = next_page_token(last_key, criteria)
    same_criteria_rebuilt = dict(reversed(list(criteria.items())))
    assert read_page_request(0, token, same_criteria_rebuilt).after == last_key


@given(sort_keys, criteria_maps, criteria_maps)
def test_token_is_refused_whenever_the_criteria_differ(
    last_key: SortKey,
    issued_for: dict[str, str | int | bool | None],
    used_with: dict[str, str | int | bool | None],
) -> None:
    # True == 1 in Python but not in a query, so compare the criteria as the service serialises them.
    assume(json.dumps(issued_for, sort_keys=True) != json.dumps(used_with, sort_keys=True))
    token = next_page_token(last_key, issued_for)
    assert _violated_field(0, token, used_with) == "page_token"
