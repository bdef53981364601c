"""Settings of the offers service, read from `OFFERS_*` environment variables."""

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

DEFAULT_ADDRESS = "127.0.0.1:50053"


@dataclass(frozen=True, kw_only=True)
class OffersSettings(FromEnvironment):
    """Everything the offers service needs to start."""

    PREFIX = "OFFERS"

    server: ServerSettings = nested(address=DEFAULT_ADDRESS)
    """Where and how the gRPC server listens (`OFFERS_GRPC_ADDRESS`, ...)."""
    database: DatabaseSettings = nested("DATABASE_")
    """The offers database, `crm_offers` (`OFFERS_DATABASE_URL`, required)."""
    customer_target: str = setting("", reader=optional_address)
    """The customer service's `host:port`, asked for usage profiles and lines and told tariff changes
    (`OFFERS_CUSTOMER_TARGET`); empty means the catalog alone is served (tests of the catalog)."""
    customer_deadline_seconds: float = setting(3.0, reader=at_least(0.05))
    """Longest a call to the customer service may take (`OFFERS_CUSTOMER_DEADLINE_SECONDS`)."""
    plan_change_interval_seconds: float = setting(1.0, reader=at_least(0.05))
    """How often accepted plan changes are sent to the customer service (`OFFERS_PLAN_CHANGE_INTERVAL_SECONDS`)."""
    offer_expiry_interval_seconds: float = setting(60.0, reader=at_least(0.05))
    """How often presented offers past their validity are marked expired (`OFFERS_OFFER_EXPIRY_INTERVAL_SECONDS`)."""
    loyalty_target: str = setting("", reader=optional_address)
    """The loyalty service's `host:port`, whose feed keeps each customer's tier (`OFFERS_LOYALTY_TARGET`);
    empty means tiers stay unknown and loyalty-linked offers are passed over."""
    follow_customer_feed: bool = setting(True)
    """Whether the customer and loyalty services' events keep the local read model of lines, usage,
    segments and tiers (`OFFERS_FOLLOW_CUSTOMER_FEED`); read from `customer_target` and `loyalty_target`."""
