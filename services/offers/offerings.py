"""Use cases of the catalog over a database session: create, read, list, version and retire offerings,
each version announced on the feed as a ProductOfferingChanged event of the offering."""

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.aggregates import AggregateType
from chassis.caller import current_caller
from chassis.errors import AlreadyExists, not_found
from chassis.outbox import append_event
from chassis.pagination import Page, PageRequest
from crm.offers.v1 import events_pb2
from services.offers import catalog_store, line_store, mapping
from services.offers.catalog import (
    Lifecycle,
    Offering,
    OfferingKind,
    checked_offering,
    retired_offering,
    updated_offering,
)


async def create_offering(session: AsyncSession, offering: Offering, now: datetime) -> Offering:
    """Adds `offering` to the catalog as version 1; ALREADY_EXISTS when its name is taken."""
    created = replace(
        checked_offering(offering),
        version=1,
        lifecycle=Lifecycle.ACTIVE,
        create_time=now,
        update_time=now,
        retire_time=None,
    )
    if not await catalog_store.insert_offering(session, created, current_caller().subject):
        raise AlreadyExists(
            "OFFERING_EXISTS", f"{created.name} exists already; choose another id", {"resource_name": created.name}
        )
    await announce(session, created, now)
    return created


async def get_offering(session: AsyncSession, name: str) -> Offering:
    """The current version of an offering; NOT_FOUND when there is none."""
    offering = await catalog_store.get_offering(session, name)
    if offering is None:
        raise not_found("product offering", name)
    return offering


async def update_offering(
    session: AsyncSession,
    name: str,
    patch: Offering,
    paths: list[str],
    expected_version: int | None,
    now: datetime,
) -> Offering:
    """Writes the next version of an offering with the masked fields changed."""
    current = await _locked(session, name)
    updated = updated_offering(current, patch, paths, expected_version=expected_version, now=now)
    await catalog_store.write_version(session, updated, current_caller().subject)
    await announce(session, updated, now)
    return updated


async def retire_offering(session: AsyncSession, name: str, expected_version: int | None, now: datetime) -> Offering:
    """Withdraws an offering from sale as its next version."""
    current = await _locked(session, name)
    retired = retired_offering(current, expected_version=expected_version, now=now)
    await catalog_store.write_version(session, retired, current_caller().subject)
    await announce(session, retired, now)
    if retired.kind is OfferingKind.TARIFF_PLAN:
        await line_store.queue_lines_of_retired_plan(session, retired.name, now)
    return retired


async def list_offerings(
    session: AsyncSession,
    page: PageRequest,
    criteria: dict[str, str | int | bool | None],
    *,
    kind: OfferingKind | None,
    market: str,
    lifecycle: Lifecycle | None,
) -> Page[Offering]:
    """A page of current versions, by name."""
    rows = await catalog_store.list_offerings(session, page, kind=kind, market=market, lifecycle=lifecycle)
    return Page.cut(rows, page, lambda o: [o.name], criteria)


async def list_versions(session: AsyncSession, name: str, page: PageRequest) -> Page[Offering]:
    """A page of an offering's versions, newest first."""
    await get_offering(session, name)
    rows = await catalog_store.list_versions(session, name, page)
    return Page.cut(rows, page, lambda o: [o.version], {"name": name})


async def announce(session: AsyncSession, offering: Offering, now: datetime) -> None:
    """Writes the offering's new version to the outbox, as an event of the offering (written after
    taking the offering's row lock, so that its versions are announced in order)."""
    await append_event(
        session,
        aggregate_type=AggregateType.PRODUCT_OFFERING,
        aggregate_id=offering.name,
        payload=events_pb2.ProductOfferingChanged(product_offering=mapping.offering_to_proto(offering)),
        now=now,
    )


async def _locked(session: AsyncSession, name: str) -> Offering:
    offering = await catalog_store.lock_offering(session, name)
    if offering is None:
        raise not_found("product offering", name)
    return offering
