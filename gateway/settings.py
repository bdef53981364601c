"""Settings of the gateway, read from `GATEWAY_*` environment variables."""

from dataclasses import dataclass

from chassis.settings import Environment, ServerSettings
from gateway.routes import EXPOSED_SERVICES

DEFAULT_ADDRESS = "127.0.0.1:50050"


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """Everything the gateway needs to start."""

    server: ServerSettings
    """Where and how the gateway listens (`GATEWAY_GRPC_ADDRESS`, ...)."""
    backend_targets: dict[str, str]
    """Backend `host:port` per exposed service name (`GATEWAY_<SERVICE>_TARGET`)."""
    max_deadline_seconds: float
    """Deadline of a forwarded call when the client set none or a longer one (`GATEWAY_MAX_DEADLINE_SECONDS`)."""
    health_check_interval_seconds: float
    """How often backend health is polled (`GATEWAY_HEALTH_CHECK_INTERVAL_SECONDS`)."""

    @classmethod
    def from_environment(cls, env: Environment | None = None) -> "GatewaySettings":
        """Reads and validates the settings; SettingsError names the bad variable."""
        env = env or Environment()
        return cls(
            server=ServerSettings.from_environment(env, "GATEWAY", DEFAULT_ADDRESS),
            backend_targets={
                service.name: env.address(service.target_variable, service.default_target)
                for service in EXPOSED_SERVICES
            },
            max_deadline_seconds=env.seconds("GATEWAY_MAX_DEADLINE_SECONDS", 30.0, minimum=0.1),
            health_check_interval_seconds=env.seconds("GATEWAY_HEALTH_CHECK_INTERVAL_SECONDS", 2.0, minimum=0.1),
        )
