"""`crm.offers.v1.OfferService` over gRPC: maps messages to the offers use cases and back.

Every mutation runs once per request id, in one transaction with the stored answer; the time of a
call is read from the service's clock.
"""

from typing import TypeAlias

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock
from chassis.database import Database
from chassis.errors import invalid_field
from chassis.etags import version_from_etag
from chassis.idempotency import IdempotentRunner
from chassis.names import SUBSCRIPTION
from chassis.pagination import Page, read_page_request
from chassis.wellknown import timestamp_to_proto
from crm.offers.v1 import (
    catalog_pb2,
    coverage_pb2,
    offers_service_pb2,
    offers_service_pb2_grpc,
    plan_change_pb2,
    recommendation_pb2,
)
from services.offers import catalog_store, coverage_store, mapping, offerings, tariff_changes
from services.offers.coverage import checked_areas
from services.offers.plan_changes import consent_required
from services.offers.resource_names import COVERAGE, PLAN_CHANGE, RECOMMENDATION, offering_name, plan_name
from services.offers.tariff_advice import TariffAdvisor

Context: TypeAlias = grpc.aio.ServicerContext[Message, Message]


class OfferServicer(offers_service_pb2_grpc.OfferServiceServicer):
    """The offers service's gRPC face."""

    def __init__(self, database: Database, clock: Clock, advisor: TariffAdvisor) -> None:
        self._database = database
        self._clock = clock
        self._advisor = advisor
        self._once = IdempotentRunner(database, catalog_store.idempotency_keys)

    # Catalog -------------------------------------------------------------------------------------

    async def CreateProductOffering(
        self, request: offers_service_pb2.CreateProductOfferingRequest, context: Context
    ) -> catalog_pb2.ProductOffering:
        offering = mapping.offering_from_proto(
            request.product_offering, request.product_offering_id, "product_offering"
        )

        async def create(session: AsyncSession) -> catalog_pb2.ProductOffering:
            return mapping.offering_to_proto(await offerings.create_offering(session, offering, self._clock.now()))

        return await self._once.run(request, catalog_pb2.ProductOffering, create)

    async def GetProductOffering(
        self, request: offers_service_pb2.GetProductOfferingRequest, context: Context
    ) -> catalog_pb2.ProductOffering:
        name = offering_name(request.name)
        async with self._database.transaction() as session:
            return mapping.offering_to_proto(await offerings.get_offering(session, name))

    async def ListProductOfferings(
        self, request: offers_service_pb2.ListProductOfferingsRequest, context: Context
    ) -> offers_service_pb2.ListProductOfferingsResponse:
        kind = mapping.KINDS.get(request.kind)
        lifecycle = mapping.LIFECYCLES.get(request.lifecycle_status)
        market = request.market.strip().upper()
        criteria: dict[str, str | int | bool | None] = {
            "kind": request.kind,
            "market": market,
            "lifecycle": request.lifecycle_status,
        }
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            result = await offerings.list_offerings(
                session, page, criteria, kind=kind, market=market, lifecycle=lifecycle
            )
        return offers_service_pb2.ListProductOfferingsResponse(
            product_offerings=[mapping.offering_to_proto(o) for o in result.items],
            next_page_token=result.next_page_token,
        )

    async def UpdateProductOffering(
        self, request: offers_service_pb2.UpdateProductOfferingRequest, context: Context
    ) -> catalog_pb2.ProductOffering:
        name = offering_name(request.product_offering.name, "product_offering.name")
        expected = version_from_etag(request.product_offering.etag, "product_offering.etag")
        paths = mapping.offering_update_paths(request.update_mask)

        async def update(session: AsyncSession) -> catalog_pb2.ProductOffering:
            current = await offerings.get_offering(session, name)
            patch = mapping.offering_patch_from_proto(request.product_offering, request.update_mask, current)
            updated = await offerings.update_offering(session, name, patch, paths, expected, self._clock.now())
            return mapping.offering_to_proto(updated)

        return await self._once.run(request, catalog_pb2.ProductOffering, update)

    async def ListProductOfferingVersions(
        self, request: offers_service_pb2.ListProductOfferingVersionsRequest, context: Context
    ) -> offers_service_pb2.ListProductOfferingVersionsResponse:
        name = offering_name(request.name)
        page = read_page_request(request.page_size, request.page_token, {"name": name})
        async with self._database.transaction() as session:
            result = await offerings.list_versions(session, name, page)
        return offers_service_pb2.ListProductOfferingVersionsResponse(
            versions=[mapping.offering_to_proto(o) for o in result.items], next_page_token=result.next_page_token
        )

    async def RetireProductOffering(
        self, request: offers_service_pb2.RetireProductOfferingRequest, context: Context
    ) -> catalog_pb2.ProductOffering:
        name = offering_name(request.name)
        expected = version_from_etag(request.etag)

        async def retire(session: AsyncSession) -> catalog_pb2.ProductOffering:
            retired = await offerings.retire_offering(session, name, expected, self._clock.now())
            return mapping.offering_to_proto(retired)

        return await self._once.run(request, catalog_pb2.ProductOffering, retire)

    # Coverage ------------------------------------------------------------------------------------

    async def GetCoverage(
        self, request: offers_service_pb2.GetCoverageRequest, context: Context
    ) -> coverage_pb2.Coverage:
        COVERAGE.parse(request.name)
        async with self._database.transaction() as session:
            state = await coverage_store.coverage_state(session)
        return _coverage(state)

    async def ListCoverageAreas(
        self, request: offers_service_pb2.ListCoverageAreasRequest, context: Context
    ) -> offers_service_pb2.ListCoverageAreasResponse:
        market = request.market.strip().upper()
        if not market:
            raise invalid_field("market", "is required")
        criteria: dict[str, str | int | bool | None] = {"market": market}
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            rows = await coverage_store.list_areas(session, market, page)
        result = Page.cut(rows, page, lambda area: [area.key], criteria)
        return offers_service_pb2.ListCoverageAreasResponse(
            areas=[mapping.area_to_proto(area) for area in result.items], next_page_token=result.next_page_token
        )

    async def ReplaceCoverage(
        self, request: offers_service_pb2.ReplaceCoverageRequest, context: Context
    ) -> coverage_pb2.Coverage:
        market = request.market.strip().upper()
        areas = checked_areas(market, [mapping.area_from_proto(area) for area in request.areas])

        async def replace(session: AsyncSession) -> coverage_pb2.Coverage:
            await coverage_store.replace_market(session, market, areas, self._clock.now())
            return _coverage(await coverage_store.coverage_state(session))

        return await self._once.run(request, coverage_pb2.Coverage, replace)

    # Tariff advice -------------------------------------------------------------------------------

    async def RecommendTariff(
        self, request: offers_service_pb2.RecommendTariffRequest, context: Context
    ) -> recommendation_pb2.TariffRecommendation:
        return await self._advisor.recommend(request.subscription, request.months)

    async def GetTariffRecommendation(
        self, request: offers_service_pb2.GetTariffRecommendationRequest, context: Context
    ) -> recommendation_pb2.TariffRecommendation:
        return await self._advisor.kept_advice(request.name)

    # Plan changes --------------------------------------------------------------------------------

    async def CreatePlanChange(
        self, request: offers_service_pb2.CreatePlanChangeRequest, context: Context
    ) -> plan_change_pb2.PlanChange:
        wanted = request.plan_change
        subscription = SUBSCRIPTION.format(*SUBSCRIPTION.parse_uuids(wanted.subscription, "plan_change.subscription"))
        to_plan = plan_name(wanted.to_plan, "plan_change.to_plan")
        recommendation = (
            RECOMMENDATION.parse_uuid(wanted.recommendation, "plan_change.recommendation")
            if wanted.recommendation
            else None
        )
        acceptance = mapping.acceptance_from_proto(wanted.acceptance, wanted.HasField("acceptance"))
        if acceptance is None or acceptance.acceptor_kind is None:
            # Refused before anything is read or written: no change without the customer's consent.
            raise consent_required(subscription)
        line = await self._advisor.line(subscription)

        async def create(session: AsyncSession) -> plan_change_pb2.PlanChange:
            change = await tariff_changes.create_accepted_change(
                session, line, to_plan, acceptance, recommendation, self._clock.now()
            )
            return mapping.plan_change_to_proto(change)

        return await self._once.run(request, plan_change_pb2.PlanChange, create)

    async def GetPlanChange(
        self, request: offers_service_pb2.GetPlanChangeRequest, context: Context
    ) -> plan_change_pb2.PlanChange:
        change_id = PLAN_CHANGE.parse_uuid(request.name)
        async with self._database.transaction() as session:
            return mapping.plan_change_to_proto(await tariff_changes.get_change(session, change_id))

    async def ListPlanChanges(
        self, request: offers_service_pb2.ListPlanChangesRequest, context: Context
    ) -> offers_service_pb2.ListPlanChangesResponse:
        customer_id, subscription_id = SUBSCRIPTION.parse_uuids(request.subscription, "subscription")
        criteria: dict[str, str | int | bool | None] = {
            "subscription": SUBSCRIPTION.format(customer_id, subscription_id)
        }
        page = read_page_request(request.page_size, request.page_token, criteria)
        async with self._database.transaction() as session:
            result = await tariff_changes.list_changes(session, customer_id, subscription_id, page)
        return offers_service_pb2.ListPlanChangesResponse(
            plan_changes=[mapping.plan_change_to_proto(c) for c in result.items],
            next_page_token=result.next_page_token,
        )

    async def AcceptPlanChange(
        self, request: offers_service_pb2.AcceptPlanChangeRequest, context: Context
    ) -> plan_change_pb2.PlanChange:
        change_id = PLAN_CHANGE.parse_uuid(request.name)
        expected = version_from_etag(request.etag)
        acceptance = mapping.acceptance_from_proto(request.acceptance, request.HasField("acceptance"))

        async def accept(session: AsyncSession) -> plan_change_pb2.PlanChange:
            change = await tariff_changes.accept_proposal(session, change_id, acceptance, expected, self._clock.now())
            return mapping.plan_change_to_proto(change)

        return await self._once.run(request, plan_change_pb2.PlanChange, accept)

    async def DeclinePlanChange(
        self, request: offers_service_pb2.DeclinePlanChangeRequest, context: Context
    ) -> plan_change_pb2.PlanChange:
        change_id = PLAN_CHANGE.parse_uuid(request.name)
        channel = mapping.channel_name(request.channel)

        async def decline(session: AsyncSession) -> plan_change_pb2.PlanChange:
            change = await tariff_changes.decline_proposal(session, change_id, channel, self._clock.now())
            return mapping.plan_change_to_proto(change)

        return await self._once.run(request, plan_change_pb2.PlanChange, decline)


def _coverage(state: coverage_store.CoverageState) -> coverage_pb2.Coverage:
    return coverage_pb2.Coverage(
        name=COVERAGE.format(),
        area_count=state.area_count,
        version=state.version,
        update_time=timestamp_to_proto(state.update_time),
    )
