"""Assembles the customer service: database, directory, servicer and the chassis server."""

from pathlib import Path

from chassis.database import Database, create_engine, migrate
from chassis.server import ServiceServer, build_server
from chassis.telemetry import instrument_engine
from crm.customer.v1 import customer_service_pb2, customer_service_pb2_grpc
from services.customer.directory import CustomerDirectory
from services.customer.servicer import CustomerServicer
from services.customer.settings import CustomerSettings

SERVICE_NAME = customer_service_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name
ERROR_DOMAIN = "customer.crm"
MIGRATIONS = Path(__file__).parent / "migrations"


def build_customer_server(settings: CustomerSettings) -> ServiceServer:
    """The customer service, bound to its port, not yet started."""
    engine = create_engine(settings.database, application_name="customer-service")
    instrument_engine(engine)
    database = Database(engine)
    servicer = CustomerServicer(database, CustomerDirectory(default_region=settings.default_region))
    server = build_server(
        settings=settings.server,
        error_domain=ERROR_DOMAIN,
        service_names=[SERVICE_NAME],
        register=lambda grpc_server: customer_service_pb2_grpc.add_CustomerServiceServicer_to_server(
            servicer, grpc_server
        ),
        readiness=database.is_reachable,
    )
    server.on_stop.append(database.close)
    return server


def migrate_customer_database(settings: CustomerSettings) -> None:
    """Brings the customer database to the newest schema."""
    migrate(settings.database.url, MIGRATIONS)
