"""Assembles the customer service: database, use cases, servicers, background work and the server."""

from pathlib import Path

import grpc

from chassis.database import Database, create_engine, migrate
from chassis.event_feed import EVENT_FEED_SERVICE_NAME, EventFeedServicer
from chassis.outbox import outbox_sequencer
from chassis.server import ServiceServer, build_server
from chassis.telemetry import instrument_engine
from crm.common.v1 import events_pb2_grpc
from crm.customer.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    customer_service_pb2,
    customer_service_pb2_grpc,
    segments_pb2,
    segments_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)
from services.customer.billing_servicer import BillingServicer
from services.customer.directory import CustomerDirectory
from services.customer.segment_evaluator import segment_evaluator
from services.customer.segment_servicer import SegmentServicer
from services.customer.servicer import CustomerServicer
from services.customer.settings import CustomerSettings
from services.customer.usage_publisher import usage_publisher
from services.customer.usage_servicer import UsageServicer

SERVICE_NAME = customer_service_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name
BILLING_SERVICE_NAME = billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name
USAGE_SERVICE_NAME = usage_pb2.DESCRIPTOR.services_by_name["UsageService"].full_name
SEGMENT_SERVICE_NAME = segments_pb2.DESCRIPTOR.services_by_name["SegmentService"].full_name
ERROR_DOMAIN = "customer.crm"
MIGRATIONS = Path(__file__).parent / "migrations"


def build_customer_server(settings: CustomerSettings) -> ServiceServer:
    """The customer service, bound to its port, not yet started."""
    engine = create_engine(settings.database, application_name="customer-service")
    instrument_engine(engine)
    database = Database(engine)
    directory = CustomerDirectory(default_region=settings.default_region)
    sequencer = outbox_sequencer(database)
    evaluator = segment_evaluator(database, rank_interval_seconds=settings.vip_rank_interval_seconds)
    event_feed = EventFeedServicer(database)
    publisher = usage_publisher(database)

    def register(server: grpc.aio.Server) -> None:
        customer_service_pb2_grpc.add_CustomerServiceServicer_to_server(CustomerServicer(database, directory), server)
        billing_pb2_grpc.add_BillingServiceServicer_to_server(BillingServicer(database), server)
        segments_pb2_grpc.add_SegmentServiceServicer_to_server(SegmentServicer(database), server)
        usage_pb2_grpc.add_UsageServiceServicer_to_server(
            UsageServicer(database, default_region=settings.default_region), server
        )
        events_pb2_grpc.add_EventFeedServiceServicer_to_server(event_feed, server)

    server = build_server(
        settings=settings.server,
        error_domain=ERROR_DOMAIN,
        service_names=[
            SERVICE_NAME,
            USAGE_SERVICE_NAME,
            BILLING_SERVICE_NAME,
            SEGMENT_SERVICE_NAME,
            EVENT_FEED_SERVICE_NAME,
        ],
        register=register,
        readiness=database.is_reachable,
    )
    server.on_start.extend([sequencer.start, publisher.start, evaluator.start])
    server.on_stopping.append(event_feed.stop_following)
    server.on_stop.extend([evaluator.stop, publisher.stop, sequencer.stop])
    server.on_stop.append(database.close)
    return server


def migrate_customer_database(settings: CustomerSettings) -> None:
    """Brings the customer database to the newest schema."""
    migrate(settings.database.url, MIGRATIONS)
