"""Assembles the loyalty service: database, servicers, outbox numbering and the server."""

from pathlib import Path

import grpc

from chassis.database import Database, create_engine, migrate
from chassis.event_feed import EVENT_FEED_SERVICE_NAME, EventFeedServicer
from chassis.outbox import outbox_sequencer
from chassis.server import ServiceServer, build_server
from chassis.telemetry import instrument_engine
from crm.common.v1 import events_pb2_grpc
from crm.loyalty.v1 import loyalty_service_pb2, loyalty_service_pb2_grpc
from services.loyalty.servicer import LoyaltyServicer
from services.loyalty.settings import LoyaltySettings

SERVICE_NAME = loyalty_service_pb2.DESCRIPTOR.services_by_name["LoyaltyService"].full_name
ERROR_DOMAIN = "loyalty.crm"
MIGRATIONS = Path(__file__).parent / "migrations"


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
    server.on_start.append(sequencer.start)
    server.on_stopping.append(event_feed.stop_following)
    server.on_stop.extend([sequencer.stop, database.close])
    return server


def migrate_loyalty_database(settings: LoyaltySettings) -> None:
    """Brings the loyalty database to the newest schema."""
    migrate(settings.database.url, MIGRATIONS)
