"""Segment use cases over a database session: a customer's segments with their reasons, the segments
and their members, and the config that drives the rules."""

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.clock import Clock
from chassis.pagination import Page, PageRequest
from services.customer.customers.lookup import existing_customer
from services.customer.segments import store
from services.customer.segments.catalogue import Dimension, listed_segments
from services.customer.segments.config import SegmentationConfig, apply_config_update, check_config_version
from services.customer.segments.rules import CustomerScore, StoredMembership


class Segmentation:
    """Reads segments and manages the segmentation config."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def customer_segments(
        self, session: AsyncSession, customer_id: uuid.UUID
    ) -> tuple[list[StoredMembership], CustomerScore | None]:
        """The customer's memberships and latest score (None before the first evaluation)."""
        await existing_customer(session, customer_id)
        return await store.memberships(session, customer_id), await store.customer_score(session, customer_id)

    async def segments(self, session: AsyncSession, dimension: Dimension | None) -> list[tuple[str, int]]:
        """The segments with members and their counts, of one dimension or (None) of every one."""
        return listed_segments(await store.segment_counts(session), dimension)

    async def members(self, session: AsyncSession, segment: str, page: PageRequest) -> Page[uuid.UUID]:
        """A page of the ids of a segment's members."""
        rows = await store.segment_members(session, segment, page)
        return Page.cut(rows, page, lambda member: [str(member)], {"segment": segment})

    async def config(self, session: AsyncSession) -> tuple[SegmentationConfig, int]:
        """The config and its version."""
        return await store.load_config(session)

    async def update_config(
        self,
        session: AsyncSession,
        patch: SegmentationConfig,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> tuple[SegmentationConfig, int]:
        """Applies a field-masked change as a new version; a stale expected version is ABORTED."""
        await store.lock_config(session)
        current, version = await store.load_config(session)
        updated = apply_config_update(current, patch, paths)
        check_config_version(expected_version, version)
        await store.save_config(session, updated, version + 1, self._clock.now())
        return updated, version + 1


async def forget_customer_segments(session: AsyncSession, customer_id: uuid.UUID) -> list[str]:
    """Removes the customer from every segment and drops their score (a deleted or erased customer);
    returns the segments they left."""
    left = [m.segment for m in await store.memberships(session, customer_id)]
    await store.delete_customer_segments(session, customer_id)
    await store.adjust_counts(session, dict.fromkeys(left, -1))
    return left
