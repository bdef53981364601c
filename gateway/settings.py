"""Settings of the gateway, read from `GATEWAY_*` environment variables."""

from dataclasses import dataclass
from pathlib import Path

from chassis.settings import (
    DatabaseSettings,
    Environment,
    FromEnvironment,
    ServerSettings,
    SettingsError,
    address,
    at_least,
    nested,
    optional_address,
    setting,
)
from gateway.routes import EXPOSED_SERVICES

DEFAULT_ADDRESS = "127.0.0.1:50050"
DEFAULT_PARTNER_ADDRESS = "127.0.0.1:50060"
DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.toml")
# Asymmetric only: a shared-secret algorithm would let anyone holding the public key set sign tokens.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)


def _backend_targets(env: Environment, name: str, default: object) -> dict[str, str]:
    """Each exposed service's backend, from its own variable (`GATEWAY_<SERVICE>_TARGET`)."""
    return {service.name: env.address(service.target_variable, service.default_target) for service in EXPOSED_SERVICES}


def _existing_file(env: Environment, name: str, default: object) -> Path:
    """A file that exists; required unless it has a default."""
    path = Path(env.text(name, None if default is None else str(default)))
    if not path.is_file():
        raise SettingsError(name, f"names no readable file: {path}")
    return path


def _optional_file(env: Environment, name: str, default: object) -> Path | None:
    """A file that exists, or None when the variable is unset."""
    return _existing_file(env, name, None) if env.text(name, "") else None


def _algorithms(env: Environment, name: str, default: object) -> tuple[str, ...]:
    """Token signature algorithms, comma-separated, asymmetric only."""
    listed = ",".join(default) if isinstance(default, tuple) else str(default)
    chosen = tuple(part.strip() for part in env.text(name, listed).split(",") if part.strip())
    refused = [algorithm for algorithm in chosen if algorithm not in ASYMMETRIC_ALGORITHMS]
    if refused or not chosen:
        raise SettingsError(
            name, f"must list asymmetric algorithms among {sorted(ASYMMETRIC_ALGORITHMS)}, got {refused}"
        )
    return chosen


@dataclass(frozen=True, kw_only=True)
class TokenSettings:
    """How employees' and customers' bearer tokens are verified (`GATEWAY_TOKEN_...`, `GATEWAY_JWKS_FILE`)."""

    key_set_file: Path = setting(variable="JWKS_FILE", reader=_existing_file)
    """The identity provider's public key set (JWKS); keys are picked by the token's `kid`."""
    issuer: str = setting(variable="TOKEN_ISSUER")
    """The `iss` every token must carry."""
    audience: str = setting("crm-gateway", variable="TOKEN_AUDIENCE")
    """The `aud` every token must carry."""
    algorithms: tuple[str, ...] = setting(("ES256",), variable="TOKEN_ALGORITHMS", reader=_algorithms)
    """Signature algorithms accepted, asymmetric only (e.g. `ES256,RS256`)."""
    leeway_seconds: float = setting(30.0, variable="TOKEN_LEEWAY_SECONDS", reader=at_least(0.0))
    """Clock skew tolerated on `exp`, `nbf` and `iat`."""


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """A token bucket: the sustained rate and the burst a caller may spend at once."""

    per_second: float
    burst: int


def _rate_limit(env: Environment, name: str, default: object) -> RateLimit:
    """A token bucket from `<NAME>_PER_SECOND` and `<NAME>_BURST`."""
    assert isinstance(default, RateLimit)  # every rate field declares its default
    return RateLimit(
        per_second=env.seconds(f"{name}_PER_SECOND", default.per_second, minimum=0.001),
        burst=env.integer(f"{name}_BURST", default.burst, minimum=1),
    )


@dataclass(frozen=True, kw_only=True)
class GatewaySettings(FromEnvironment):
    """Everything the gateway needs to start."""

    PREFIX = "GATEWAY"

    # The gateway waits on backends, not on its own work: it keeps more calls in flight than a service.
    server: ServerSettings = nested(address=DEFAULT_ADDRESS, max_concurrent_rpcs=256)
    """Where employees' and customers' apps call, over TLS (`GATEWAY_GRPC_ADDRESS`, ...)."""
    partner_address: str = setting(DEFAULT_PARTNER_ADDRESS, reader=address)
    """Where retail partners call, over mutual TLS with their client certificate (`GATEWAY_PARTNER_ADDRESS`)."""
    probe_address: str = setting("", reader=optional_address)
    """A plaintext address serving gRPC health only, for Kubernetes probes (`GATEWAY_PROBE_ADDRESS`; off if unset)."""
    tls_cert_file: Path = setting(reader=_existing_file)
    """The gateway's TLS certificate chain, PEM (`GATEWAY_TLS_CERT_FILE`, required)."""
    tls_key_file: Path = setting(reader=_existing_file)
    """The private key of that certificate, PEM (`GATEWAY_TLS_KEY_FILE`, required)."""
    partner_ca_file: Path = setting(reader=_existing_file)
    """The operator's partner CA, PEM: partner client certificates must chain to it (`GATEWAY_PARTNER_CA_FILE`)."""
    tokens: TokenSettings = nested()
    """Bearer-token verification (`GATEWAY_JWKS_FILE`, `GATEWAY_TOKEN_ISSUER`, ...)."""
    development_identity: bool = False
    """Accepts `x-crm-user` (and `x-crm-roles`) as an employee's identity without proof
    (`GATEWAY_DEVELOPMENT_IDENTITY`); for local use only, never in a deployment."""
    policy_file: Path = setting(DEFAULT_POLICY_FILE, reader=_existing_file)
    """Who may call what (`GATEWAY_POLICY_FILE`; the repository's `gateway/policy.toml` by default)."""
    database: DatabaseSettings = nested("DATABASE")
    """The gateway's own database, holding the audit trail (`GATEWAY_DATABASE_URL`, ...)."""
    employee_rate: RateLimit = setting(RateLimit(per_second=100.0, burst=200), reader=_rate_limit)
    """Each employee's calls (`GATEWAY_EMPLOYEE_RATE_PER_SECOND`, `GATEWAY_EMPLOYEE_RATE_BURST`)."""
    customer_rate: RateLimit = setting(RateLimit(per_second=10.0, burst=30), reader=_rate_limit)
    """Each customer's calls (`GATEWAY_CUSTOMER_RATE_PER_SECOND`, `GATEWAY_CUSTOMER_RATE_BURST`)."""
    retailer_rate: RateLimit = setting(RateLimit(per_second=200.0, burst=400), reader=_rate_limit)
    """Each retail partner's calls, all its shops together (`GATEWAY_RETAILER_RATE_PER_SECOND`, `..._BURST`)."""
    owner_cache_seconds: float = setting(30.0, reader=at_least(0.0))
    """How long the gateway keeps which retail partner onboarded a customer (`GATEWAY_OWNER_CACHE_SECONDS`)."""
    counter_presence_seconds: float = setting(1800.0, reader=at_least(1.0))
    """How long a customer found by phone at a partner's counter stays reachable by that partner
    (`GATEWAY_COUNTER_PRESENCE_SECONDS`)."""
    backend_targets: dict[str, str] = setting(reader=_backend_targets)
    """Backend `host:port` per exposed service name (`GATEWAY_<SERVICE>_TARGET`)."""
    max_deadline_seconds: float = setting(30.0, reader=at_least(0.1))
    """Deadline of a forwarded call when the client set none or a longer one (`GATEWAY_MAX_DEADLINE_SECONDS`)."""
