"""Settings of the customer service, read from `CUSTOMER_*` environment variables."""

from dataclasses import dataclass

from chassis.settings import (
    DatabaseSettings,
    Environment,
    ServerSettings,
    SettingsError,
)
from services.customer.domain import is_country_code

DEFAULT_ADDRESS = "127.0.0.1:50051"


@dataclass(frozen=True, kw_only=True)
class CustomerSettings:
    """Everything the customer service needs to start."""

    server: ServerSettings
    """Where and how the gRPC server listens (`CUSTOMER_GRPC_ADDRESS`, ...)."""
    database: DatabaseSettings
    """The customer database (`CUSTOMER_DATABASE_URL`, required)."""
    default_region: str
    """ISO country for phone numbers written without a country code (`CUSTOMER_DEFAULT_REGION`, default UZ)."""
    vip_rank_interval_seconds: float = 300.0
    """How often customers are ranked by spend for the VIP threshold (`CUSTOMER_VIP_RANK_INTERVAL_SECONDS`)."""

    @classmethod
    def from_environment(cls, env: Environment | None = None) -> "CustomerSettings":
        """Reads and validates the settings; SettingsError names the bad variable."""
        env = env or Environment()
        region = env.text("CUSTOMER_DEFAULT_REGION", "UZ").upper()
        if not is_country_code(region):
            raise SettingsError("CUSTOMER_DEFAULT_REGION", f"must be an ISO 3166-1 alpha-2 code, got {region!r}")
        return cls(
            server=ServerSettings.from_environment(env, "CUSTOMER", DEFAULT_ADDRESS),
            database=DatabaseSettings.from_environment(env, "CUSTOMER"),
            default_region=region,
            vip_rank_interval_seconds=env.seconds("CUSTOMER_VIP_RANK_INTERVAL_SECONDS", 300.0, minimum=1.0),
        )
