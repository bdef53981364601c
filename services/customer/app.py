"""The customer service's parts: customers, usage, billing and segments, and their background work."""

from pathlib import Path

from chassis.service import Service, ServiceDefinition
from crm.customer.v1.billing_pb2_grpc import add_BillingServiceServicer_to_server
from crm.customer.v1.customer_service_pb2_grpc import add_CustomerServiceServicer_to_server
from crm.customer.v1.segments_pb2_grpc import add_SegmentServiceServicer_to_server
from crm.customer.v1.usage_pb2_grpc import add_UsageServiceServicer_to_server
from services.customer.billing_servicer import BillingServicer
from services.customer.directory import CustomerDirectory
from services.customer.segment_evaluator import segment_evaluator
from services.customer.segment_servicer import SegmentServicer
from services.customer.servicer import CustomerServicer
from services.customer.settings import CustomerSettings
from services.customer.usage_publisher import usage_publisher
from services.customer.usage_servicer import UsageServicer


def assemble(service: Service, settings: CustomerSettings) -> None:
    """Adds the customer service's parts."""
    database = service.database
    directory = CustomerDirectory(default_region=settings.default_region)
    service.serve(add_CustomerServiceServicer_to_server, CustomerServicer(database, directory))
    service.serve(add_UsageServiceServicer_to_server, UsageServicer(database, default_region=settings.default_region))
    service.serve(add_BillingServiceServicer_to_server, BillingServicer(database))
    service.serve(add_SegmentServiceServicer_to_server, SegmentServicer(database))
    service.run_in_background(usage_publisher(database))
    service.run_in_background(segment_evaluator(database, rank_interval_seconds=settings.vip_rank_interval_seconds))


CUSTOMER = ServiceDefinition(
    name="customer-service",
    error_domain="customer.crm",
    settings=CustomerSettings.from_environment,
    assemble=assemble,
    migrations=Path(__file__).parent / "migrations",
)
