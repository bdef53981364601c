"""The loyalty service's parts: its servicer, the customer events it follows and its scheduled work."""

from pathlib import Path

from chassis.caller import Caller
from chassis.service import Service, ServiceDefinition
from crm.loyalty.v1.loyalty_service_pb2_grpc import add_LoyaltyServiceServicer_to_server
from services.loyalty import earning, scheduled
from services.loyalty.servicer import LoyaltyServicer
from services.loyalty.settings import LoyaltySettings

# Who the ledger names as the actor of what the service does on its own.
EVENTS_ACTOR = Caller(subject="loyalty-earning-rules", kind="service")
SCHEDULE_ACTOR = Caller(subject="loyalty-schedule", kind="service")


def assemble(service: Service, settings: LoyaltySettings) -> None:
    """Adds the loyalty service's parts, each reading the time from the service's clock."""
    database, clock = service.database, service.clock
    service.serve(add_LoyaltyServiceServicer_to_server, LoyaltyServicer(database, clock))
    service.run_every(
        "loyalty-schedule",
        settings.schedule_interval_seconds,
        lambda: scheduled.run_scheduled_work(database, clock),
        actor=SCHEDULE_ACTOR,
    )
    if settings.customer_feed_target:
        service.follow(
            consumer=earning.CONSUMER_NAME,
            producer=earning.PRODUCER_NAME,
            feed=settings.customer_feed_target,
            handler=earning.customer_event_handler(clock),
            event_types=earning.EVENT_TYPES,
            actor=EVENTS_ACTOR,
        )


LOYALTY = ServiceDefinition(
    name="loyalty-service",
    error_domain="loyalty.crm",
    settings=LoyaltySettings.from_environment,
    assemble=assemble,
    migrations=Path(__file__).parent / "migrations",
    module="services.loyalty",
)
