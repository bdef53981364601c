"""Settings of the gateway, read from `GATEWAY_*` environment variables."""

from dataclasses import dataclass

from chassis.settings import Environment, FromEnvironment, ServerSettings, at_least, nested, setting
from gateway.routes import EXPOSED_SERVICES

DEFAULT_ADDRESS = "127.0.0.1:50050"


def _backend_targets(env: Environment, name: str, default: object) -> dict[str, str]:
    """Each exposed service's backend, from its own variable (`GATEWAY_<SERVICE>_TARGET`)."""
    return {service.name: env.address(service.target_variable, service.default_target) for service in EXPOSED_SERVICES}


@dataclass(frozen=True, kw_only=True)
class GatewaySettings(FromEnvironment):
    """Everything the gateway needs to start."""

    PREFIX = "GATEWAY"

    # The gateway waits on backends, not on its own work: it keeps more calls in flight than a service.
    server: ServerSettings = nested(address=DEFAULT_ADDRESS, max_concurrent_rpcs=256)
    """Where and how the gateway listens (`GATEWAY_GRPC_ADDRESS`, ...)."""
    backend_targets: dict[str, str] = setting(reader=_backend_targets)
    """Backend `host:port` per exposed service name (`GATEWAY_<SERVICE>_TARGET`)."""
    max_deadline_seconds: float = setting(30.0, reader=at_least(0.1))
    """Deadline of a forwarded call when the client set none or a longer one (`GATEWAY_MAX_DEADLINE_SECONDS`)."""
