"""Settings of the loyalty service, read from `LOYALTY_*` environment variables."""

from dataclasses import dataclass

from chassis.settings import (
    DatabaseSettings,
    FromEnvironment,
    ServerSettings,
    at_least,
    nested,
    optional_address,
    setting,
)

DEFAULT_ADDRESS = "127.0.0.1:50052"


@dataclass(frozen=True, kw_only=True)
class LoyaltySettings(FromEnvironment):
    """Everything the loyalty service needs to start."""

    PREFIX = "LOYALTY"

    server: ServerSettings = nested(address=DEFAULT_ADDRESS)
    """Where and how the gRPC server listens (`LOYALTY_GRPC_ADDRESS`, ...)."""
    database: DatabaseSettings = nested("DATABASE_")
    """The loyalty database (`LOYALTY_DATABASE_URL`, required)."""
    customer_feed_target: str = setting("", reader=optional_address)
    """The customer service's `host:port`, whose events open accounts and earn points
    (`LOYALTY_CUSTOMER_FEED_TARGET`); empty means events are not read (tests of the API alone)."""
    schedule_interval_seconds: float = setting(60.0, reader=at_least(0.05))
    """How often lapses, tier reviews and anniversaries are looked for (`LOYALTY_SCHEDULE_INTERVAL_SECONDS`)."""
