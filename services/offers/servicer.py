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
from chassis.etags import version_from_etag
from chassis.idempotency import IdempotentRunner
from chassis.pagination import read_page_request
from crm.offers.v1 import catalog_pb2, offers_service_pb2, offers_service_pb2_grpc
from services.offers import catalog_store, mapping, offerings
from services.offers.resource_names import offering_name

Context: TypeAlias = grpc.aio.ServicerContext[Message, Message]


class OfferServicer(offers_service_pb2_grpc.OfferServiceServicer):
    """The offers service's gRPC face."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
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
