"""The offers service's parts: its servicers over the catalog, coverage, advice, plan changes and
next-best actions, the senders and proposers it runs, and the feeds it follows."""

from pathlib import Path

from chassis.service import Service, ServiceDefinition
from crm.offers.v1.next_best_action_service_pb2_grpc import add_NextBestActionServiceServicer_to_server
from crm.offers.v1.offers_service_pb2_grpc import add_OfferServiceServicer_to_server
from services.offers import customer_events, loyalty_events
from services.offers.action_decisions import NextBestActionDecider
from services.offers.customer_lines import SERVICE_CALLER, CustomerLines
from services.offers.next_best_action_servicer import NextBestActionServicer
from services.offers.offer_presentations import OfferPresentations
from services.offers.retirement import RetirementProposer
from services.offers.servicer import OfferServicer
from services.offers.settings import OffersSettings
from services.offers.tariff_advice import TariffAdvisor
from services.offers.tariff_change_sender import TariffChangeSender


def assemble(service: Service, settings: OffersSettings) -> None:
    """Adds the offers service's parts, each reading the time from the service's clock."""
    database, clock = service.database, service.clock
    lines = None
    if settings.customer_target:
        lines = CustomerLines(settings.customer_target, deadline_seconds=settings.customer_deadline_seconds)
        service.run_in_background(lines)
        sender = TariffChangeSender(database, clock, lines)
        service.run_every(
            "plan-change-sender", settings.plan_change_interval_seconds, sender.send_due, actor=SERVICE_CALLER
        )
    advisor = TariffAdvisor(database, clock, lines)
    if lines is not None:
        proposer = RetirementProposer(database, clock, advisor)
        service.run_every(
            "retirement-proposer", settings.plan_change_interval_seconds, proposer.propose_due, actor=SERVICE_CALLER
        )
    if settings.customer_target and settings.follow_customer_feed:
        service.follow(
            consumer=customer_events.CONSUMER_NAME,
            producer=customer_events.PRODUCER_NAME,
            feed=settings.customer_target,
            handler=customer_events.customer_event_handler(clock),
            event_types=customer_events.EVENT_TYPES,
            actor=SERVICE_CALLER,
        )
    if settings.loyalty_target and settings.follow_customer_feed:
        service.follow(
            consumer=loyalty_events.CONSUMER_NAME,
            producer=loyalty_events.PRODUCER_NAME,
            feed=settings.loyalty_target,
            handler=loyalty_events.loyalty_event_handler(clock),
            event_types=loyalty_events.EVENT_TYPES,
            actor=SERVICE_CALLER,
        )
    service.serve(add_OfferServiceServicer_to_server, OfferServicer(database, clock, advisor))
    decider = NextBestActionDecider(database, clock, lines)
    presentations = OfferPresentations(database, clock, decider)
    service.run_every(
        "offer-expiry", settings.offer_expiry_interval_seconds, presentations.expire_due, actor=SERVICE_CALLER
    )
    service.serve(
        add_NextBestActionServiceServicer_to_server,
        NextBestActionServicer(database, clock, decider, presentations),
    )


OFFERS = ServiceDefinition(
    name="offers-service",
    error_domain="offers.crm",
    settings=OffersSettings.from_environment,
    assemble=assemble,
    migrations=Path(__file__).parent / "migrations",
    module="services.offers",
)
