"""The catalog through the API on the real database: offerings created, read, listed, versioned and
retired; bad input and stale etags write nothing; retries answer once."""

import uuid

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm.offers.v1 import catalog_pb2, events_pb2, offers_service_pb2
from crm.offers.v1.offers_service_pb2_grpc import OfferServiceStub
from tests.integration.offers.catalog_support import create, som, tariff
from tests.support import failure, request_id


async def test_a_created_plan_is_version_one_and_reads_back_with_its_terms(offers: OfferServiceStub):
    name = await create(offers, tariff("Start 5 GB", price=49_000, data_mb=5_000, regions=("Toshkent",)))
    plan = await offers.GetProductOffering(offers_service_pb2.GetProductOfferingRequest(name=name), timeout=5)
    assert name.startswith("plans/t-")
    assert (plan.version, plan.etag, plan.lifecycle_status) == (1, 'W/"1"', catalog_pb2.LIFECYCLE_STATUS_ACTIVE)
    assert (plan.price.currency_code, plan.price.units, plan.allowances.data_mb) == ("UZS", 49_000, 5_000)
    assert list(plan.regions) == ["Toshkent"]


async def test_a_bundle_lives_in_its_own_collection(offers: OfferServiceStub):
    name = await create(offers, tariff("Video 4G", price=15_000, kind=catalog_pb2.OFFERING_KIND_ADD_ON_BUNDLE))
    assert name.startswith("bundles/")


async def test_the_same_request_id_creates_once(offers: OfferServiceStub, offers_engine: AsyncEngine):
    request = offers_service_pb2.CreateProductOfferingRequest(
        product_offering=tariff("Once", price=10_000),
        product_offering_id=f"once-{uuid.uuid4().hex[:10]}",
        request_id=request_id(),
    )
    first = await offers.CreateProductOffering(request, timeout=5)
    again = await offers.CreateProductOffering(request, timeout=5)
    assert again == first
    async with offers_engine.connect() as connection:
        versions = await connection.scalar(
            text("SELECT count(*) FROM product_offering_versions WHERE name = :name"), {"name": first.name}
        )
    assert versions == 1


async def test_a_taken_id_is_already_exists(offers: OfferServiceStub):
    name = await create(offers, tariff("Taken", price=10_000))
    request = offers_service_pb2.CreateProductOfferingRequest(
        product_offering=tariff("Again", price=10_000), product_offering_id=name.split("/")[1], request_id=request_id()
    )
    code, error = await failure(offers.CreateProductOffering(request, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "OFFERING_EXISTS")


async def test_bad_input_names_each_field_and_writes_nothing(offers: OfferServiceStub, offers_engine: AsyncEngine):
    bad = tariff("Bad", price=10_000, market="UA")
    bad.price.nanos = 5_000_000  # half a tiyin, and the wrong currency for the market
    request = offers_service_pb2.CreateProductOfferingRequest(
        product_offering=bad, product_offering_id="bad-plan-never-written", request_id=request_id()
    )
    code, error = await failure(offers.CreateProductOffering(request, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "product_offering.price" in error.message
    async with offers_engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM product_offerings WHERE name = 'plans/bad-plan-never-written'")
        )
    assert count == 0


async def test_an_update_writes_a_new_version_and_keeps_the_old_one(offers: OfferServiceStub):
    name = await create(offers, tariff("Classic", price=60_000))
    change = catalog_pb2.ProductOffering(name=name, price=som(55_000), etag='W/"1"')
    updated = await offers.UpdateProductOffering(
        offers_service_pb2.UpdateProductOfferingRequest(
            product_offering=change, update_mask=FieldMask(paths=["price"]), request_id=request_id()
        ),
        timeout=5,
    )
    assert (updated.version, updated.price.units, updated.display_name) == (2, 55_000, "Classic")
    versions = await offers.ListProductOfferingVersions(
        offers_service_pb2.ListProductOfferingVersionsRequest(name=name), timeout=5
    )
    assert [(v.version, v.price.units) for v in versions.versions] == [(2, 55_000), (1, 60_000)]


async def test_an_update_with_a_stale_etag_is_aborted_and_changes_nothing(offers: OfferServiceStub):
    name = await create(offers, tariff("Stale", price=60_000))
    change = catalog_pb2.ProductOffering(name=name, price=som(1_000), etag='W/"7"')
    request = offers_service_pb2.UpdateProductOfferingRequest(
        product_offering=change, update_mask=FieldMask(paths=["price"]), request_id=request_id()
    )
    code, error = await failure(offers.UpdateProductOffering(request, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    plan = await offers.GetProductOffering(offers_service_pb2.GetProductOfferingRequest(name=name), timeout=5)
    assert (plan.version, plan.price.units) == (1, 60_000)


async def test_a_retired_plan_is_listed_as_retired_and_cannot_be_updated(offers: OfferServiceStub):
    name = await create(offers, tariff("Old Classic", price=80_000))
    retired = await offers.RetireProductOffering(
        offers_service_pb2.RetireProductOfferingRequest(name=name, request_id=request_id()), timeout=5
    )
    assert (retired.lifecycle_status, retired.version) == (catalog_pb2.LIFECYCLE_STATUS_RETIRED, 2)
    assert retired.HasField("retire_time")
    change = offers_service_pb2.UpdateProductOfferingRequest(
        product_offering=catalog_pb2.ProductOffering(name=name, display_name="Back"),
        update_mask=FieldMask(paths=["display_name"]),
        request_id=request_id(),
    )
    code, error = await failure(offers.UpdateProductOffering(change, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "OFFERING_RETIRED")
    listed = await offers.ListProductOfferings(
        offers_service_pb2.ListProductOfferingsRequest(
            market="UZ", lifecycle_status=catalog_pb2.LIFECYCLE_STATUS_RETIRED, page_size=500
        ),
        timeout=5,
    )
    assert name in {o.name for o in listed.product_offerings}


async def test_listing_pages_through_offerings_and_refuses_a_token_of_other_criteria(offers: OfferServiceStub):
    for index in range(3):
        await create(offers, tariff(f"Paged {index}", price=10_000))
    first = await offers.ListProductOfferings(
        offers_service_pb2.ListProductOfferingsRequest(market="UZ", page_size=2), timeout=5
    )
    assert len(first.product_offerings) == 2 and first.next_page_token
    second = await offers.ListProductOfferings(
        offers_service_pb2.ListProductOfferingsRequest(market="UZ", page_size=2, page_token=first.next_page_token),
        timeout=5,
    )
    assert second.product_offerings[0].name > first.product_offerings[-1].name
    other = offers_service_pb2.ListProductOfferingsRequest(market="UA", page_size=2, page_token=first.next_page_token)
    code, _ = await failure(offers.ListProductOfferings(other, timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_every_version_is_announced_in_order_under_the_offering_as_its_aggregate(
    offers: OfferServiceStub, offers_engine: AsyncEngine
):
    name = await create(offers, tariff("Announced", price=45_000))
    current = await offers.GetProductOffering(offers_service_pb2.GetProductOfferingRequest(name=name), timeout=5)
    await offers.UpdateProductOffering(
        offers_service_pb2.UpdateProductOfferingRequest(
            product_offering=catalog_pb2.ProductOffering(name=name, display_name="Announced again", etag=current.etag),
            update_mask=FieldMask(paths=["display_name"]),
            request_id=request_id(),
        ),
        timeout=5,
    )
    await offers.RetireProductOffering(
        offers_service_pb2.RetireProductOfferingRequest(name=name, request_id=request_id()), timeout=5
    )
    async with offers_engine.connect() as connection:
        rows = (
            await connection.execute(
                text("SELECT aggregatetype, type, payload FROM outbox WHERE aggregateid = :name ORDER BY seq"),
                {"name": name},
            )
        ).all()
    assert {(row.aggregatetype, row.type) for row in rows} == {
        ("product_offering", "crm.offers.v1.ProductOfferingChanged")
    }
    versions = [events_pb2.ProductOfferingChanged.FromString(row.payload).product_offering for row in rows]
    assert [(v.version, v.lifecycle_status) for v in versions] == [
        (1, catalog_pb2.LIFECYCLE_STATUS_ACTIVE),
        (2, catalog_pb2.LIFECYCLE_STATUS_ACTIVE),
        (3, catalog_pb2.LIFECYCLE_STATUS_RETIRED),
    ]
