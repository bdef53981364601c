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
    customer_feed_target: str = ""
    """The customer service's `host:port`, whose events open accounts and earn points
    (`LOYALTY_CUSTOMER_FEED_TARGET`); empty means events are not read (tests of the API alone)."""
    schedule_interval_seconds: float = 60.0
    """How often lapses, tier reviews and anniversaries are looked for (`LOYALTY_SCHEDULE_INTERVAL_SECONDS`)."""

    @classmethod
    def from_environment(cls, env: Environment | None = None) -> "LoyaltySettings":
        """Reads and validates the settings; SettingsError names the bad variable."""
        env = env or Environment()
        feed = env.text("LOYALTY_CUSTOMER_FEED_TARGET", "")
        return cls(
            server=ServerSettings.from_environment(env, "LOYALTY", DEFAULT_ADDRESS),
            database=DatabaseSettings.from_environment(env, "LOYALTY"),
            customer_feed_target=env.address("LOYALTY_CUSTOMER_FEED_TARGET", feed) if feed else "",
            schedule_interval_seconds=env.seconds("LOYALTY_SCHEDULE_INTERVAL_SECONDS", 60.0, minimum=0.05),
        )
