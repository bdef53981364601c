"""The gateway's word on who is calling: clients name themselves in `x-crm-user`, and a backend sees
only the authenticated caller, never caller keys a client wrote itself."""

from hypothesis import given
from hypothesis import strategies as st

from chassis.caller import CALLER_METADATA_PREFIX, KIND_KEY, SUBJECT_KEY, TENANT_KEY, Caller, caller_from_metadata
from gateway.access import USER_KEY, Metadata, authenticate, forwardable_metadata

ALICE = Caller(subject="alice", kind="employee")
SHOP_CLERK = Caller(subject="clerk-17", kind="retailer", tenant="kyivstar-shop-7")
FORGED = [
    (SUBJECT_KEY, "root"),
    (KIND_KEY, "service"),
    (TENANT_KEY, "someone-elses-chain"),
    ("x-crm-caller-role", "admin"),
]


def _caller_entries(metadata: Metadata) -> list[tuple[str, str | bytes]]:
    return [(key, value) for key, value in metadata if key.startswith(CALLER_METADATA_PREFIX)]


# authenticate --------------------------------------------------------------------------------------


def test_user_header_names_an_employee_caller() -> None:
    assert authenticate([("accept-language", "uz"), (USER_KEY, "alice")]) == ALICE


def test_user_header_is_trimmed() -> None:
    assert authenticate([(USER_KEY, "  alice \t")]).subject == "alice"


def test_request_without_user_header_is_anonymous() -> None:
    assert authenticate([("accept-language", "uk")]) == Caller(subject="anonymous", kind="anonymous")


def test_blank_user_header_is_anonymous() -> None:
    assert authenticate([(USER_KEY, "   ")]).kind == "anonymous"


def test_binary_user_header_is_anonymous() -> None:
    assert authenticate([(USER_KEY, b"alice")]).kind == "anonymous"


def test_caller_keys_sent_by_a_client_do_not_authenticate_it() -> None:
    assert authenticate(FORGED).kind == "anonymous"


# forwardable_metadata ------------------------------------------------------------------------------


def test_caller_keys_sent_by_a_client_are_never_forwarded() -> None:
    forwarded = forwardable_metadata(FORGED, ALICE)
    assert _caller_entries(forwarded) == ALICE.to_metadata()


def test_backend_reads_the_authenticated_caller_not_the_forged_one() -> None:
    assert caller_from_metadata(forwardable_metadata(FORGED, SHOP_CLERK)) == SHOP_CLERK


def test_authenticated_caller_is_added_to_empty_metadata() -> None:
    assert caller_from_metadata(forwardable_metadata([], ALICE)) == ALICE


def test_caller_tenant_is_forwarded_when_the_caller_has_one() -> None:
    assert (TENANT_KEY, "kyivstar-shop-7") in forwardable_metadata([], SHOP_CLERK)


def test_caller_without_tenant_forwards_no_tenant() -> None:
    assert all(key != TENANT_KEY for key, _ in forwardable_metadata([(TENANT_KEY, "forged")], ALICE))


def test_accept_language_is_forwarded() -> None:
    assert ("accept-language", "uz-Latn") in forwardable_metadata([("accept-language", "uz-Latn")], ALICE)


def test_other_client_metadata_stays_at_the_gateway() -> None:
    client = [(USER_KEY, "alice"), ("authorization", "Bearer abc"), ("x-debug", "1")]
    forwarded_keys = {key for key, _ in forwardable_metadata(client, ALICE)}
    assert forwarded_keys.isdisjoint({USER_KEY, "authorization", "x-debug"})


metadata_keys = st.one_of(
    st.sampled_from([SUBJECT_KEY, KIND_KEY, TENANT_KEY, USER_KEY, "accept-language", "authorization"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10).map(
        lambda tail: CALLER_METADATA_PREFIX + tail
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20),
)
metadata_values = st.one_of(st.text(max_size=20), st.binary(max_size=20))
callers = st.builds(
    Caller,
    subject=st.text(min_size=1, max_size=20),
    kind=st.sampled_from(["employee", "retailer", "customer", "service"]),
    tenant=st.one_of(st.just(""), st.text(min_size=1, max_size=20)),
)


@given(st.lists(st.tuples(metadata_keys, metadata_values), max_size=10), callers)
def test_forwarded_caller_keys_are_exactly_the_authenticated_callers(
    client_metadata: list[tuple[str, str | bytes]], caller: Caller
) -> None:
    assert _caller_entries(forwardable_metadata(client_metadata, caller)) == caller.to_metadata()
