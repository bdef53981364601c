"""Settings of the loyalty service, read from `LOYALTY_*` environment variables."""

from dataclasses import dataclass

from chassis.settings import DatabaseSettings, Environment, ServerSettings

DEFAULT_ADDRESS = "127.0.0.1:50052"


@dataclass(frozen=True, kw_only=True)
class LoyaltySettings:
    """Everything the loyalty service needs to start."""

    server: ServerSettings
    """Where and how the gRPC server listens (`LOYALTY_GRPC_ADDRESS`, ...)."""
    database: DatabaseSettings
    """The loyalty database (`LOYALTY_DATABASE_URL`, required)."""

    @classmethod
    def from_environment(cls, env: Environment | None = None) -> "LoyaltySettings":
        """Reads and validates the settings; SettingsError names the bad variable."""
        env = env or Environment()
        return cls(
            server=ServerSettings.from_environment(env, "LOYALTY", DEFAULT_ADDRESS),
            database=DatabaseSettings.from_environment(env, "LOYALTY"),
        )
