"""Who is calling: bearer tokens verified against the key set (every way a token can be wrong is
UNAUTHENTICATED), which follows rotations, partners named by their certificate, the development scheme
only when switched on, and a backend sees only the gateway's word on the caller."""

import base64
import datetime
import json
import logging
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chassis.caller import CALLER_METADATA_PREFIX, KIND_KEY, ROLES_KEY, SUBJECT_KEY, TENANT_KEY, Caller
from chassis.clock import ManualClock
from chassis.errors import Unauthenticated
from gateway.access import forwardable_metadata
from gateway.identity import KEY_SET_CHECK_INTERVAL, Authenticator, Credentials, TokenVerifier
from gateway.settings import TokenSettings
from tools.credentials import AUDIENCE, ISSUER, LocalCredentials, write_signing_key

TLS_WITHOUT_CLIENT_CERTIFICATE = {"transport_security_type": [b"ssl"]}
CUSTOMER = "customers/0b8f9a52-4f0e-4c55-9d3e-2f6a1c7d8e90"


def authenticator(credentials: LocalCredentials, *, development: bool = False) -> Authenticator:
    settings = TokenSettings(key_set_file=credentials.key_set, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=5)
    return Authenticator(TokenVerifier(settings), development_identity=development)


def bearer(token: str) -> Credentials:
    return Credentials(metadata=[("authorization", f"Bearer {token}")], auth_context=TLS_WITHOUT_CLIENT_CERTIFICATE)


def refusal(credentials: LocalCredentials, call: Credentials, *, development: bool = False) -> str:
    with pytest.raises(Unauthenticated) as refused:
        authenticator(credentials, development=development).caller(call)
    return refused.value.reason


def unsigned(claims: dict[str, object], header: dict[str, object]) -> str:
    def part(document: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def valid_claims(now: datetime.datetime) -> dict[str, object]:
    return {
        "sub": "agent-dilnoza",
        "roles": ["agent"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + datetime.timedelta(minutes=5)).timestamp()),
    }


def test_an_employee_token_names_the_employee_and_roles(credentials: LocalCredentials) -> None:
    token = credentials.employee_token("agent-dilnoza", ["supervisor", "agent"])
    caller = authenticator(credentials).caller(bearer(token))
    assert caller == Caller(subject="agent-dilnoza", kind="employee", roles=("agent", "supervisor"))


def test_a_customer_token_names_the_customer_as_the_subject(credentials: LocalCredentials) -> None:
    caller = authenticator(credentials).caller(bearer(credentials.customer_token(CUSTOMER)))
    assert caller == Caller(subject=CUSTOMER, kind="customer")


def test_alg_none_is_refused(credentials: LocalCredentials) -> None:
    now = datetime.datetime.now(datetime.UTC)
    token = unsigned(valid_claims(now), {"alg": "none", "typ": "JWT", "kid": credentials.key_id})
    assert refusal(credentials, bearer(token)) == "TOKEN_ALGORITHM_REFUSED"


def test_hs256_signed_with_the_public_key_is_refused(credentials: LocalCredentials) -> None:
    """Algorithm confusion: the public key set is public, so a shared-secret signature proves nothing."""
    key = serialization.load_pem_private_key(credentials.signing_key.read_bytes(), password=None)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = datetime.datetime.now(datetime.UTC)
    header = {"alg": "HS256", "typ": "JWT", "kid": credentials.key_id}
    signing_input = unsigned(valid_claims(now), header).rstrip(".")
    import hashlib
    import hmac

    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    assert refusal(credentials, bearer(token)) == "TOKEN_ALGORITHM_REFUSED"


def test_an_expired_token_is_refused(credentials: LocalCredentials) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    token = credentials.sign({"sub": "agent-dilnoza", "roles": ["agent"]}, lifetime_seconds=60, now=past)
    assert refusal(credentials, bearer(token)) == "TOKEN_EXPIRED"


def test_a_token_not_yet_valid_is_refused(credentials: LocalCredentials) -> None:
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    token = credentials.sign({"sub": "agent-dilnoza", "roles": ["agent"]}, now=future)
    assert refusal(credentials, bearer(token)) == "TOKEN_NOT_YET_VALID"


def test_a_token_for_another_audience_is_refused(credentials: LocalCredentials) -> None:
    token = credentials.sign({"sub": "agent-dilnoza", "roles": ["agent"], "aud": "billing-portal"})
    assert refusal(credentials, bearer(token)) == "TOKEN_AUDIENCE_REFUSED"


def test_a_token_from_another_issuer_is_refused(credentials: LocalCredentials) -> None:
    token = credentials.sign({"sub": "agent-dilnoza", "roles": ["agent"], "iss": "https://login.example.com"})
    assert refusal(credentials, bearer(token)) == "TOKEN_ISSUER_REFUSED"


def test_a_token_with_an_unknown_key_id_is_refused(credentials: LocalCredentials) -> None:
    key = serialization.load_pem_private_key(credentials.signing_key.read_bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    token = jwt.encode(valid_claims(now), key, algorithm="ES256", headers={"kid": "retired-2019"})  # type: ignore[arg-type]
    assert refusal(credentials, bearer(token)) == "TOKEN_KEY_UNKNOWN"


def test_a_token_signed_by_another_key_is_refused(credentials: LocalCredentials) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    token = jwt.encode(valid_claims(now), impostor, algorithm="ES256", headers={"kid": credentials.key_id})
    assert refusal(credentials, bearer(token)) == "TOKEN_SIGNATURE_INVALID"


def test_a_tampered_token_is_refused(credentials: LocalCredentials) -> None:
    token = credentials.employee_token("agent-dilnoza", ["agent"])
    header, claims, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    body["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    assert refusal(credentials, bearer(f"{header}.{forged}.{signature}")) == "TOKEN_SIGNATURE_INVALID"


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub"])
def test_a_token_missing_a_required_claim_is_refused(credentials: LocalCredentials, claim: str) -> None:
    key = serialization.load_pem_private_key(credentials.signing_key.read_bytes(), password=None)
    claims = valid_claims(datetime.datetime.now(datetime.UTC))
    del claims[claim]
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": credentials.key_id})  # type: ignore[arg-type]
    assert refusal(credentials, bearer(token)) == "TOKEN_CLAIM_MISSING"


def test_a_token_with_neither_roles_nor_customer_is_refused(credentials: LocalCredentials) -> None:
    assert refusal(credentials, bearer(credentials.sign({"sub": "someone"}))) == "TOKEN_KIND_UNKNOWN"


def test_a_token_with_an_unknown_role_is_refused(credentials: LocalCredentials) -> None:
    token = credentials.employee_token("agent-dilnoza", ["root"])
    assert refusal(credentials, bearer(token)) == "TOKEN_ROLE_UNKNOWN"


def test_garbage_in_place_of_a_token_is_refused(credentials: LocalCredentials) -> None:
    assert refusal(credentials, bearer("not-a-jwt")) == "MALFORMED_TOKEN"


def test_another_authorization_scheme_is_refused(credentials: LocalCredentials) -> None:
    call = Credentials(metadata=[("authorization", "Basic YWxpY2U6c2VjcmV0")], auth_context={})
    assert refusal(credentials, call) == "BEARER_TOKEN_EXPECTED"


def test_a_call_without_credentials_is_refused(credentials: LocalCredentials) -> None:
    assert refusal(credentials, Credentials(metadata=[], auth_context=TLS_WITHOUT_CLIENT_CERTIFICATE)) == (
        "CREDENTIALS_MISSING"
    )


def test_the_development_user_is_refused_unless_switched_on(credentials: LocalCredentials) -> None:
    call = Credentials(metadata=[("x-crm-user", "alice")], auth_context=TLS_WITHOUT_CLIENT_CERTIFICATE)
    assert refusal(credentials, call) == "CREDENTIALS_MISSING"


def test_the_development_user_is_an_employee_when_switched_on(credentials: LocalCredentials) -> None:
    call = Credentials(
        metadata=[("x-crm-user", " alice "), ("x-crm-roles", "supervisor,agent")],
        auth_context=TLS_WITHOUT_CLIENT_CERTIFICATE,
    )
    caller = authenticator(credentials, development=True).caller(call)
    assert caller == Caller(subject="alice", kind="employee", roles=("agent", "supervisor"))


def test_a_partner_certificate_names_the_retail_chain(credentials: LocalCredentials) -> None:
    context = {
        "transport_security_type": [b"ssl"],
        "x509_pem_cert": [b"-----BEGIN CERTIFICATE-----..."],
        "peer_uri": [b"crm://retailers/texnomart"],
    }
    caller = authenticator(credentials).caller(Credentials(metadata=[], auth_context=context))
    assert caller == Caller(subject="retailers/texnomart", kind="retailer", tenant="retailers/texnomart")


def test_a_partner_certificate_wins_over_a_token_it_carries(credentials: LocalCredentials) -> None:
    context = {"x509_pem_cert": [b"..."], "peer_uri": [b"crm://retailers/texnomart"]}
    token = credentials.employee_token("admin-1", ["admin"])
    call = Credentials(metadata=[("authorization", f"Bearer {token}")], auth_context=context)
    assert authenticator(credentials).caller(call).kind == "retailer"


def test_a_certificate_naming_no_partner_is_refused(credentials: LocalCredentials) -> None:
    context = {"x509_pem_cert": [b"..."], "x509_subject_alternative_name": [b"shop.example.com"]}
    assert refusal(credentials, Credentials(metadata=[], auth_context=context)) == "PARTNER_NOT_NAMED"


def test_a_backend_sees_only_the_gateways_word_on_the_caller() -> None:
    forged = [
        (SUBJECT_KEY, "root"),
        (KIND_KEY, "service"),
        (TENANT_KEY, "someone-elses-chain"),
        (ROLES_KEY, "admin"),
        ("x-crm-user", "mallory"),
        ("x-crm-anything", "x"),
        ("authorization", "Bearer secret"),
        ("accept-language", "uz"),
    ]
    caller = Caller(subject="texnomart", kind="retailer", tenant="texnomart")
    sent = forwardable_metadata(forged, caller)
    assert sent == [
        ("accept-language", "uz"),
        (SUBJECT_KEY, "texnomart"),
        (KIND_KEY, "retailer"),
        (TENANT_KEY, "texnomart"),
    ]
    assert not [key for key, _ in sent if key.startswith("x-crm") and not key.startswith(CALLER_METADATA_PREFIX)]


def rotating_verifier(credentials: LocalCredentials, folder: Path) -> tuple[TokenVerifier, ManualClock, Path]:
    """A verifier on a key set file of its own (the local one, copied), on a clock the test moves."""
    key_set = folder / "jwks.json"
    key_set.write_bytes(credentials.key_set.read_bytes())
    settings = TokenSettings(key_set_file=key_set, issuer=ISSUER, audience=AUDIENCE, leeway_seconds=5)
    clock = ManualClock()
    return TokenVerifier(settings, clock), clock, key_set


def another_key(folder: Path, key_id: str) -> tuple[ec.EllipticCurvePrivateKey, dict[str, object]]:
    """A second signing key and its entry for a key set."""
    write_signing_key(folder / f"{key_id}.key", folder / f"{key_id}.json", key_id=key_id)
    private = serialization.load_pem_private_key((folder / f"{key_id}.key").read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return private, json.loads((folder / f"{key_id}.json").read_text())["keys"][0]


def test_a_key_removed_from_the_key_set_stops_verifying_within_the_check_interval(
    credentials: LocalCredentials, tmp_path: Path
) -> None:
    verifier, clock, key_set = rotating_verifier(credentials, tmp_path)
    token = credentials.employee_token("agent-dilnoza", ["agent"])
    assert verifier.caller(token).subject == "agent-dilnoza"
    _, replacement = another_key(tmp_path, "local-2")
    key_set.write_text(json.dumps({"keys": [replacement]}))
    clock.advance(KEY_SET_CHECK_INTERVAL - datetime.timedelta(seconds=1))
    assert verifier.caller(token).subject == "agent-dilnoza"
    clock.advance(datetime.timedelta(seconds=1))
    with pytest.raises(Unauthenticated) as refused:
        verifier.caller(token)
    assert refused.value.reason == "TOKEN_KEY_UNKNOWN"


def test_a_key_published_in_the_key_set_verifies_at_once(credentials: LocalCredentials, tmp_path: Path) -> None:
    verifier, _, key_set = rotating_verifier(credentials, tmp_path)
    private, published = another_key(tmp_path, "local-2")
    now = datetime.datetime.now(datetime.UTC)
    token = jwt.encode(valid_claims(now), private, algorithm="ES256", headers={"kid": "local-2"})
    with pytest.raises(Unauthenticated) as refused:
        verifier.caller(token)
    assert refused.value.reason == "TOKEN_KEY_UNKNOWN"
    document = json.loads(key_set.read_text())
    key_set.write_text(json.dumps({"keys": [*document["keys"], published]}))
    assert verifier.caller(token).subject == "agent-dilnoza"
    assert verifier.caller(credentials.employee_token("agent-aziz", ["agent"])).subject == "agent-aziz"


def test_a_key_set_that_cannot_be_read_leaves_the_keys_as_they_were(
    credentials: LocalCredentials, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    verifier, clock, key_set = rotating_verifier(credentials, tmp_path)
    key_set.write_text('{"keys": [{"kty": "EC", ')
    clock.advance(KEY_SET_CHECK_INTERVAL)
    with caplog.at_level(logging.WARNING, logger="gateway.identity"):
        assert verifier.caller(credentials.employee_token("agent-aziz", ["agent"])).subject == "agent-aziz"
    assert [r.getMessage() for r in caplog.records] == [
        "the token key set cannot be read; the keys read before stay in use"
    ]
