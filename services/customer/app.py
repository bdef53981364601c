"""The customer service's parts: customers, usage, billing and segments, their background work, and
erasure across all of them."""

from pathlib import Path

from chassis.service import Service, ServiceDefinition
from crm.customer.v1.billing_pb2_grpc import add_BillingServiceServicer_to_server
from crm.customer.v1.customer_service_pb2_grpc import add_CustomerServiceServicer_to_server
from crm.customer.v1.segments_pb2_grpc import add_SegmentServiceServicer_to_server
from crm.customer.v1.usage_pb2_grpc import add_UsageServiceServicer_to_server
from services.customer.billing.servicer import BillingServicer
from services.customer.billing.use_cases import BillingFacts
from services.customer.customers.servicer import CustomerServicer
from services.customer.customers.use_cases import CustomerDirectory
from services.customer.erasure import CustomerErasure
from services.customer.segments.evaluator import segment_evaluator
from services.customer.segments.servicer import SegmentServicer
from services.customer.segments.use_cases import Segmentation
from services.customer.settings import CustomerSettings
from services.customer.usage.publisher import usage_publisher
from services.customer.usage.servicer import UsageServicer
from services.customer.usage.use_cases import UsageProfiles


def assemble(service: Service, settings: CustomerSettings) -> None:
    """Adds the customer service's parts, each over the service's database and clock."""
    database, clock, region = service.database, service.clock, settings.default_region
    directory = CustomerDirectory(default_region=region, clock=clock)
    erasure = CustomerErasure(clock)
    service.serve(add_CustomerServiceServicer_to_server, CustomerServicer(database, directory, erasure.erase_customer))
    usage = UsageProfiles(default_region=region, clock=clock)
    service.serve(add_UsageServiceServicer_to_server, UsageServicer(database, usage))
    service.serve(add_BillingServiceServicer_to_server, BillingServicer(database, BillingFacts(clock)))
    service.serve(add_SegmentServiceServicer_to_server, SegmentServicer(database, Segmentation(clock)))
    service.run_in_background(usage_publisher(database, clock))
    service.run_in_background(
        segment_evaluator(database, clock, rank_interval_seconds=settings.vip_rank_interval_seconds)
    )


CUSTOMER = ServiceDefinition(
    name="customer-service",
    error_domain="customer.crm",
    settings=CustomerSettings.from_environment,
    assemble=assemble,
    migrations=Path(__file__).parent / "migrations",
    module="services.customer",
)
