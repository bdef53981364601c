"""Settings of the customer service, read from `CUSTOMER_*` environment variables."""

from dataclasses import dataclass

from chassis.settings import (
    DatabaseSettings,
    Environment,
    FromEnvironment,
    ServerSettings,
    SettingsError,
    at_least,
    nested,
    setting,
)
from services.customer.phone_numbers import is_country_code

DEFAULT_ADDRESS = "127.0.0.1:50051"


def _country_code(env: Environment, name: str, default: str) -> str:
    code = env.text(name, default).upper()
    if not is_country_code(code):
        raise SettingsError(name, f"must be an ISO 3166-1 alpha-2 code, got {code!r}")
    return code


@dataclass(frozen=True, kw_only=True)
class CustomerSettings(FromEnvironment):
    """Everything the customer service needs to start."""

    PREFIX = "CUSTOMER"

    server: ServerSettings = nested(address=DEFAULT_ADDRESS)
    """Where and how the gRPC server listens (`CUSTOMER_GRPC_ADDRESS`, ...)."""
    database: DatabaseSettings = nested("DATABASE_")
    """The customer database (`CUSTOMER_DATABASE_URL`, required)."""
    default_region: str = setting("UZ", reader=_country_code)
    """ISO country for phone numbers written without a country code (`CUSTOMER_DEFAULT_REGION`)."""
    vip_rank_interval_seconds: float = setting(300.0, reader=at_least(1.0))
    """How often customers are ranked by spend for the VIP threshold (`CUSTOMER_VIP_RANK_INTERVAL_SECONDS`)."""
