"""Assembles the loyalty service: database, servicers, outbox numbering, the customer events it
follows, its scheduled work and the server."""

import asyncio
from pathlib import Path

import grpc

from chassis.background import RepeatingTask
from chassis.caller import Caller, set_current_caller
from chassis.database import Database, create_engine, migrate
from chassis.event_consumer import EventConsumer
from chassis.event_feed import EVENT_FEED_SERVICE_NAME, EventFeedServicer
from chassis.outbox import outbox_sequencer
from chassis.server import ServiceServer, build_server
from chassis.telemetry import instrument_engine
from crm.common.v1 import events_pb2_grpc
from crm.loyalty.v1 import loyalty_service_pb2, loyalty_service_pb2_grpc
from services.loyalty import earning, scheduled
from services.loyalty.servicer import LoyaltyServicer
from services.loyalty.settings import LoyaltySettings

SERVICE_NAME = loyalty_service_pb2.DESCRIPTOR.services_by_name["LoyaltyService"].full_name
ERROR_DOMAIN = "loyalty.crm"
MIGRATIONS = Path(__file__).parent / "migrations"
# Who the ledger names as the actor of what the service does on its own.
EVENTS_ACTOR = Caller(subject="loyalty-earning-rules", kind="service")
SCHEDULE_ACTOR = Caller(subject="loyalty-schedule", kind="service")


def build_loyalty_server(settings: LoyaltySettings) -> ServiceServer:
    """The loyalty service, bound to its port, not yet started."""
    engine = create_engine(settings.database, application_name="loyalty-service")
    instrument_engine(engine)
    database = Database(engine)
    sequencer = outbox_sequencer(database)
    event_feed = EventFeedServicer(database)

    def register(server: grpc.aio.Server) -> None:
        loyalty_service_pb2_grpc.add_LoyaltyServiceServicer_to_server(LoyaltyServicer(database), server)
        events_pb2_grpc.add_EventFeedServiceServicer_to_server(event_feed, server)

    server = build_server(
        settings=settings.server,
        error_domain=ERROR_DOMAIN,
        service_names=[SERVICE_NAME, EVENT_FEED_SERVICE_NAME],
        register=register,
        readiness=database.is_reachable,
    )

    async def run_due_work() -> bool:
        set_current_caller(SCHEDULE_ACTOR)
        await scheduled.run_scheduled_work(database)
        return False

    schedule = RepeatingTask("loyalty-schedule", run_due_work, settings.schedule_interval_seconds)
    server.on_start.extend([sequencer.start, schedule.start])
    server.on_stopping.append(event_feed.stop_following)
    if settings.customer_feed_target:
        _follow_customer_events(server, database, settings.customer_feed_target)
    server.on_stop.extend([schedule.stop, sequencer.stop, database.close])
    return server


def _follow_customer_events(server: ServiceServer, database: Database, target: str) -> None:
    """Applies the customer service's events while the server runs, each exactly once."""
    consumer = EventConsumer(
        name=earning.CONSUMER_NAME,
        producer=earning.PRODUCER_NAME,
        feed=target,
        database=database,
        handler=earning.apply_customer_event,
        event_types=earning.EVENT_TYPES,
    )
    running: list[asyncio.Task[None]] = []

    async def follow() -> None:
        set_current_caller(EVENTS_ACTOR)
        await consumer.run_until_stopped()

    def start() -> None:
        running.append(asyncio.create_task(follow(), name="loyalty-customer-events"))

    async def stop() -> None:
        consumer.stop()
        await asyncio.gather(*running, return_exceptions=True)
        await consumer.close()

    server.on_start.append(start)
    server.on_stop.insert(0, stop)


def migrate_loyalty_database(settings: LoyaltySettings) -> None:
    """Brings the loyalty database to the newest schema."""
    migrate(settings.database.url, MIGRATIONS)
