"""Settings of the complaints service, read from `COMPLAINTS_*` environment variables."""

from dataclasses import dataclass

from chassis.settings import (
    DatabaseSettings,
    FromEnvironment,
    ServerSettings,
    address,
    at_least,
    between,
    nested,
    optional_address,
    setting,
)

DEFAULT_ADDRESS = "127.0.0.1:50054"


@dataclass(frozen=True, kw_only=True)
class ComplaintsSettings(FromEnvironment):
    """Everything the complaints service needs to start."""

    PREFIX = "COMPLAINTS"

    server: ServerSettings = nested(address=DEFAULT_ADDRESS)
    """Where and how the gRPC server listens (`COMPLAINTS_GRPC_ADDRESS`, ...)."""
    database: DatabaseSettings = nested("DATABASE_")
    """The complaints database (`COMPLAINTS_DATABASE_URL`, required)."""
    customer_target: str = setting("127.0.0.1:50051", reader=address)
    """The customer service's `host:port`, asked whether a ticket's customer exists (`COMPLAINTS_CUSTOMER_TARGET`)."""
    customer_feed_target: str = setting("", reader=optional_address)
    """The customer service's `host:port` whose events (segments, erasure) the service follows
    (`COMPLAINTS_CUSTOMER_FEED_TARGET`); empty means events are not read (tests of the API alone)."""
    loyalty_target: str = setting("127.0.0.1:50052", reader=address)
    """The loyalty service's `host:port`, credited with goodwill compensations (`COMPLAINTS_LOYALTY_TARGET`)."""
    call_deadline_seconds: float = setting(2.0, reader=at_least(0.05))
    """Deadline of each call to the customer and loyalty services (`COMPLAINTS_CALL_DEADLINE_SECONDS`)."""
    schedule_interval_seconds: float = setting(60.0, reader=at_least(0.05))
    """How often SLA warnings and breaches, silent pending and resolved tickets are looked for
    (`COMPLAINTS_SCHEDULE_INTERVAL_SECONDS`)."""
    compensation_interval_seconds: float = setting(1.0, reader=at_least(0.05))
    """How often pending compensations are sent (`COMPLAINTS_COMPENSATION_INTERVAL_SECONDS`)."""
    pending_timeout_business_days: int = setting(5, reader=between(1, 365))
    """A pending ticket is cancelled after this many business days without the customer's answer
    (`COMPLAINTS_PENDING_TIMEOUT_BUSINESS_DAYS`)."""
    resolution_silence_days: int = setting(7, reader=between(1, 365))
    """A resolved ticket is closed after this many days without the customer's word
    (`COMPLAINTS_RESOLUTION_SILENCE_DAYS`)."""
