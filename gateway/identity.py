"""Who is calling: the one place where a call's credentials become a `Caller`.

- Employees and customers present a bearer JWT (`authorization: Bearer ...`), verified against the
  identity provider's key set with the configured asymmetric algorithms; `exp`, `iat`, `iss`, `aud`
  and `sub` are required. An employee's token carries `roles`; a customer's names `customer`
  (`customers/{id}`), which is then the caller's subject.
- Retail partners call the partner port with a client certificate of the operator's partner CA (the
  TLS layer has verified the chain and validity); the certificate's SAN URI `crm://retailers/{id}`
  makes the caller the partner `retailers/{id}` (as customers' `retailer_id` names it).
- The development scheme (`x-crm-user`, `x-crm-roles`) exists only when its setting is on.

Anything else is UNAUTHENTICATED, with a reason the caller can act on and nothing about keys.
"""

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cachetools import TTLCache

from chassis.caller import Caller
from chassis.clock import SYSTEM_CLOCK, Clock
from chassis.errors import Unauthenticated
from gateway.settings import TokenSettings

PARTNER_URI_PREFIX = "crm://retailers/"
DEVELOPMENT_USER_KEY = "x-crm-user"
DEVELOPMENT_ROLES_KEY = "x-crm-roles"
EMPLOYEE_ROLES = frozenset({"agent", "supervisor", "marketing", "back-office", "sre", "admin"})
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
# A verified token is reused for a minute at most (and never past its `exp`): verifying a signature
# costs more than the rest of a forwarded call.
_VERIFIED_TOKENS_KEPT = 10_000
_VERIFIED_TOKEN_SECONDS = 60.0
KEY_SET_CHECK_INTERVAL = timedelta(seconds=5)
"""How often the key set file is read again: a key published there verifies at once (an unknown `kid`
reads the file at once), a key removed from it stops verifying within this time, cached tokens too."""
_log = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str | bytes]]
AuthContext = Mapping[str, Iterable[bytes]]


@dataclass(frozen=True)
class Credentials:
    """What a call presented: its metadata and the TLS layer's word on the peer."""

    metadata: Metadata
    auth_context: AuthContext


class TokenVerifier:
    """Verifies bearer tokens against a JWKS file, which follows the identity provider's rotations:
    it is read again every KEY_SET_CHECK_INTERVAL of `clock` and whenever an unknown `kid` appears; when
    its keys change, every token verified before is verified again."""

    def __init__(self, settings: TokenSettings, clock: Clock = SYSTEM_CLOCK) -> None:
        self._settings = settings
        self._clock = clock
        self._document = settings.key_set_file.read_bytes()
        self._keys = _key_set(self._document)
        self._checked_at = self._clock.now()
        self._verified: TTLCache[str, tuple[Caller, float]] = TTLCache(_VERIFIED_TOKENS_KEPT, _VERIFIED_TOKEN_SECONDS)

    def caller(self, token: str) -> Caller:
        """The caller a valid token names; UNAUTHENTICATED otherwise."""
        now = self._clock.now()
        if now - self._checked_at >= KEY_SET_CHECK_INTERVAL:
            self._check_key_set(now)
        kept = self._verified.get(token)
        if kept is not None and kept[1] > time.time():
            return kept[0]
        claims = self._claims(token)
        caller = _caller_of(claims)
        expires = claims["exp"]
        self._verified[token] = (caller, float(expires) if isinstance(expires, int | float) else 0.0)
        return caller

    def _claims(self, token: str) -> dict[str, object]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refused("MALFORMED_TOKEN", "the bearer token is not a well-formed JWT") from None
        if header.get("alg") not in self._settings.algorithms:
            raise _refused(
                "TOKEN_ALGORITHM_REFUSED", f"tokens must be signed with {', '.join(self._settings.algorithms)}"
            )
        key = self._key(str(header.get("kid", "")))
        try:
            claims: dict[str, object] = jwt.decode(
                token,
                key.key,
                algorithms=list(self._settings.algorithms),
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_seconds,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise _refused("TOKEN_EXPIRED", "the bearer token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _refused("TOKEN_NOT_YET_VALID", "the bearer token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise _refused("TOKEN_AUDIENCE_REFUSED", "the bearer token is meant for another audience") from None
        except jwt.InvalidIssuerError:
            raise _refused("TOKEN_ISSUER_REFUSED", "the bearer token comes from an unknown issuer") from None
        except jwt.MissingRequiredClaimError as missing:
            raise _refused("TOKEN_CLAIM_MISSING", f"the bearer token lacks the {missing.claim!r} claim") from None
        except jwt.PyJWTError:
            raise _refused("TOKEN_SIGNATURE_INVALID", "the bearer token's signature does not verify") from None
        return claims

    def _key(self, key_id: str) -> jwt.PyJWK:
        if key_id not in self._keys:
            # Keys rotate: a new `kid` may have been published since the set was read.
            self._check_key_set(self._clock.now())
        if key_id not in self._keys:
            raise _refused("TOKEN_KEY_UNKNOWN", "the bearer token is signed with a key this gateway does not know")
        return self._keys[key_id]

    def _check_key_set(self, now: datetime) -> None:
        """Reads the key set file again; a changed one replaces the keys and forgets verified tokens.
        A file that cannot be read or parsed (half written) leaves the keys as they were."""
        self._checked_at = now
        try:
            document = self._settings.key_set_file.read_bytes()
            if document == self._document:
                return
            keys = _key_set(document)
        except (OSError, ValueError, jwt.PyJWTError) as error:
            _log.warning(
                "the token key set cannot be read; the keys read before stay in use",
                extra={"key_set_file": str(self._settings.key_set_file), "error": str(error)},
            )
            return
        self._document, self._keys = document, keys
        self._verified.clear()
        _log.info("the token key set changed", extra={"key_ids": sorted(keys)})


class Authenticator:
    """Turns each call's credentials into its caller."""

    def __init__(self, tokens: TokenVerifier, *, development_identity: bool) -> None:
        self._tokens = tokens
        self._development_identity = development_identity

    @property
    def development_identity(self) -> bool:
        """Whether the unproven development scheme is on."""
        return self._development_identity

    def caller(self, credentials: Credentials) -> Caller:
        """The proven caller; UNAUTHENTICATED when the call proves no one."""
        partner = _partner_of(credentials.auth_context)
        if partner is not None:
            return partner
        values = _text_values(credentials.metadata)
        authorization = values.get("authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _refused("BEARER_TOKEN_EXPECTED", "authorization must be `Bearer <token>`")
            return self._tokens.caller(token.strip())
        if self._development_identity and values.get(DEVELOPMENT_USER_KEY, "").strip():
            return _development_caller(values)
        raise _refused("CREDENTIALS_MISSING", "call with a bearer token, or a partner certificate on the partner port")


def _caller_of(claims: Mapping[str, object]) -> Caller:
    subject, customer, roles = claims.get("sub"), claims.get("customer"), claims.get("roles")
    if not isinstance(subject, str) or not subject.strip():
        raise _refused("TOKEN_CLAIM_MISSING", "the bearer token's 'sub' is empty")
    if customer is not None and roles is not None:
        raise _refused("TOKEN_KIND_AMBIGUOUS", "a token names a customer or carries roles, not both")
    if isinstance(customer, str) and customer.startswith("customers/") and customer.count("/") == 1:
        return Caller(subject=customer, kind="customer")
    if isinstance(roles, list) and roles and all(isinstance(role, str) for role in roles):
        unknown = sorted(set(roles) - EMPLOYEE_ROLES)
        if unknown:
            raise _refused("TOKEN_ROLE_UNKNOWN", f"unknown roles {unknown}")
        return Caller(subject=subject.strip(), kind="employee", roles=tuple(sorted(set(roles))))
    raise _refused("TOKEN_KIND_UNKNOWN", "a token must carry `roles` (employees) or `customer` (customers)")


def _partner_of(auth_context: AuthContext) -> Caller | None:
    """The retail partner a verified client certificate names; None without a client certificate."""
    if not auth_context.get("x509_pem_cert"):
        return None
    for uri in auth_context.get("peer_uri", ()) or auth_context.get("x509_subject_alternative_name", ()):
        text = uri.decode(errors="replace")
        partner = text.removeprefix(PARTNER_URI_PREFIX)
        if text.startswith(PARTNER_URI_PREFIX) and partner and "/" not in partner:
            # Partners are named as the customer and loyalty services name them: `retailers/{id}`.
            return Caller(subject=f"retailers/{partner}", kind="retailer", tenant=f"retailers/{partner}")
    raise _refused("PARTNER_NOT_NAMED", f"the client certificate names no partner as {PARTNER_URI_PREFIX}{{id}}")


def _development_caller(values: Mapping[str, str]) -> Caller:
    roles = tuple(sorted({r.strip() for r in values.get(DEVELOPMENT_ROLES_KEY, "agent").split(",") if r.strip()}))
    unknown = sorted(set(roles) - EMPLOYEE_ROLES)
    if unknown:
        raise _refused("ROLE_UNKNOWN", f"unknown roles {unknown} in {DEVELOPMENT_ROLES_KEY}")
    return Caller(subject=values[DEVELOPMENT_USER_KEY].strip(), kind="employee", roles=roles or ("agent",))


def _text_values(metadata: Metadata) -> dict[str, str]:
    return {key: value for key, value in metadata if isinstance(value, str)}


def _key_set(document: bytes) -> dict[str, jwt.PyJWK]:
    """The keys of a JWKS document by `kid`; only asymmetric keys (a symmetric key would verify forgeries)."""
    parsed = json.loads(document)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("keys", []), list):
        raise ValueError("a key set is a JSON object whose `keys` is a list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in parsed.get("keys", []):
        if not isinstance(entry, dict):
            raise ValueError("each key of a key set is a JSON object")
        if entry.get("kty") == "oct":
            continue
        key = jwt.PyJWK(entry)
        if key.key_id:
            keys[key.key_id] = key
    return keys


def _refused(reason: str, message: str) -> Unauthenticated:
    return Unauthenticated(reason, message)
