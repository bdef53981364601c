"""The offers service's parts: its servicer over the catalog, coverage, advice and plan changes."""

from pathlib import Path

from chassis.service import Service, ServiceDefinition
from crm.offers.v1.offers_service_pb2_grpc import add_OfferServiceServicer_to_server
from services.offers.servicer import OfferServicer
from services.offers.settings import OffersSettings


def assemble(service: Service, settings: OffersSettings) -> None:
    """Adds the offers service's parts, each reading the time from the service's clock."""
    service.serve(add_OfferServiceServicer_to_server, OfferServicer(service.database, service.clock))  # type: ignore[abstract]


OFFERS = ServiceDefinition(
    name="offers-service",
    error_domain="offers.crm",
    settings=OffersSettings.from_environment,
    assemble=assemble,
    migrations=Path(__file__).parent / "migrations",
    module="services.offers",
)
