"""The complaints service's parts: its servicer, the customer service it asks, the loyalty service
it credits, the customer events it follows and its scheduled work."""

from datetime import timedelta
from pathlib import Path

from chassis.caller import Caller
from chassis.service import Service, ServiceDefinition
from crm.complaints.v1.complaint_service_pb2_grpc import add_ComplaintServiceServicer_to_server
from services.complaints import customer_events, scheduled
from services.complaints.compensation import GoodwillSender
from services.complaints.complaints import Timeouts
from services.complaints.customer_directory import CustomerDirectory
from services.complaints.servicer import ComplaintServicer
from services.complaints.settings import ComplaintsSettings

# Who the history names as the actor of what the service does on its own.
SCHEDULE_ACTOR = Caller(subject="complaints-schedule", kind="service")
EVENTS_ACTOR = Caller(subject="complaints-customer-events", kind="service")


def assemble(service: Service, settings: ComplaintsSettings) -> None:
    """Adds the complaints service's parts, each reading the time from the service's clock."""
    database, clock = service.database, service.clock
    deadline = settings.call_deadline_seconds
    customers = CustomerDirectory(settings.customer_target, deadline_seconds=deadline)
    goodwill = GoodwillSender(settings.loyalty_target, deadline_seconds=deadline)
    timeouts = Timeouts(
        pending_business_days=settings.pending_timeout_business_days,
        resolution_silence=timedelta(days=settings.resolution_silence_days),
    )
    servicer = ComplaintServicer(database, clock, customers=customers, goodwill=goodwill, timeouts=timeouts)
    service.serve(add_ComplaintServiceServicer_to_server, servicer)
    # Channels close after the work that uses them has stopped (background work stops in reverse).
    service.run_in_background(customers)
    service.run_in_background(goodwill)
    service.run_every(
        "complaints-schedule",
        settings.schedule_interval_seconds,
        lambda: scheduled.run_scheduled_work(database, clock, timeouts, goodwill),
        actor=SCHEDULE_ACTOR,
    )
    service.run_every(
        "complaints-compensation",
        settings.compensation_interval_seconds,
        lambda: goodwill.send_due(database, clock),
        actor=SCHEDULE_ACTOR,
    )
    if settings.customer_feed_target:
        service.follow(
            consumer=customer_events.CONSUMER_NAME,
            producer=customer_events.PRODUCER_NAME,
            feed=settings.customer_feed_target,
            handler=customer_events.customer_event_handler(),
            event_types=customer_events.EVENT_TYPES,
            actor=EVENTS_ACTOR,
        )


COMPLAINTS = ServiceDefinition(
    name="complaints-service",
    error_domain="complaints.crm",
    settings=ComplaintsSettings.from_environment,
    assemble=assemble,
    migrations=Path(__file__).parent / "migrations",
    module="services.complaints",
)
