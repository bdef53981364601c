"""The customer directory: each use case of customers, lines and consent as one method over a database
session, joining the rules with the store. Every method runs inside the caller's transaction.

A change others must hear about writes its event to the outbox in that same transaction, after it
locked the customer's row: events of one customer (aggregate `customers/{customer}`, lines included)
are numbered in the order their changes committed.
"""

import uuid
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.clock import Clock, today
from chassis.errors import AlreadyExists, etag_mismatch, not_found
from chassis.names import CUSTOMER, SUBSCRIPTION
from chassis.pagination import Page, PageRequest
from crm.customer.v1 import events_pb2
from services.customer.announcements import announce
from services.customer.customers import lookup, store
from services.customer.customers.consent import ConsentRecord, ConsentRequest, ConsentState, check_consent_request
from services.customer.customers.consent import consent_state as consent_state_of
from services.customer.customers.lifecycle import (
    Customer,
    CustomerStatus,
    StatusChange,
    change_status,
    ensure_not_erased,
    initial_status,
)
from services.customer.customers.lines import (
    Subscription,
    SubscriptionPatch,
    apply_subscription_update,
    ensure_customer_can_have_lines,
    ensure_deletable,
    normalized_subscription,
)
from services.customer.customers.mapping import customer_to_proto, subscription_to_proto
from services.customer.customers.profile import (
    CustomerProfile,
    ProfilePatch,
    apply_profile_update,
    normalized_profile,
    phone_region,
)
from services.customer.customers.search import SearchCriteria
from services.customer.request_answers import link_request_to_customer


class CustomerDirectory:
    """Use cases of the customer system of record."""

    def __init__(self, *, default_region: str, clock: Clock) -> None:
        self.default_region = default_region
        """ISO country in which phone numbers without a country code are read."""
        self._clock = clock

    # Customers -----------------------------------------------------------------------------------

    async def create_customer(
        self, session: AsyncSession, profile: CustomerProfile, requested_status: CustomerStatus | None
    ) -> Customer:
        """Validates and stores a new customer."""
        status = initial_status(requested_status)
        normalized = normalized_profile(
            profile, default_region=self.default_region, today=today(self._clock), path="customer"
        )
        now, actor = self._clock.now(), current_caller().subject
        customer = Customer(
            id=uuid.uuid4(),
            profile=normalized,
            status=status,
            create_time=now,
            creator=actor,
            update_time=now,
            updater=actor,
        )
        await store.insert_customer(session, customer)
        await announce(session, customer.id, events_pb2.CustomerCreated(customer=customer_to_proto(customer)), now)
        return customer

    async def get_customer(self, session: AsyncSession, customer_id: uuid.UUID) -> Customer:
        """The customer; NOT_FOUND when absent or deleted."""
        return await lookup.existing_customer(session, customer_id)

    async def list_customers(self, session: AsyncSession, page: PageRequest) -> Page[Customer]:
        """A page of all customers."""
        rows = await store.list_customers(session, page)
        return Page.cut(rows, page, lambda c: [str(c.id)], {})

    async def search_customers(
        self, session: AsyncSession, criteria: SearchCriteria, page: PageRequest
    ) -> Page[Customer]:
        """A page of customers matching the criteria."""
        rows = await store.search_customers(session, criteria, page)
        return Page.cut(rows, page, lambda c: [str(c.id)], criteria.as_dict())

    async def update_customer(
        self,
        session: AsyncSession,
        customer_id: uuid.UUID,
        patch: ProfilePatch,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Customer:
        """Applies a field-masked change; concurrent updates queue on the row and never overwrite
        each other silently (a stale etag is ABORTED)."""
        current = await self._lock_changeable(session, customer_id, expected_version)
        merged = apply_profile_update(current.profile, patch, paths)
        normalized = normalized_profile(
            merged, default_region=self.default_region, today=today(self._clock), path="customer"
        )
        now = self._clock.now()
        updated = replace(
            current, profile=normalized, update_time=now, updater=current_caller().subject, version=current.version + 1
        )
        await store.update_customer(session, updated)
        await announce(session, customer_id, events_pb2.CustomerUpdated(customer=customer_to_proto(updated)), now)
        return updated

    async def change_status(
        self, session: AsyncSession, customer_id: uuid.UUID, change: StatusChange, expected_version: int | None
    ) -> Customer:
        """Moves the customer through its lifecycle."""
        current = await self._lock_changeable(session, customer_id, expected_version)
        now = self._clock.now()
        updated = change_status(current, change, actor=current_caller().subject, now=now)
        await store.update_customer(session, updated)
        await announce(session, customer_id, events_pb2.CustomerUpdated(customer=customer_to_proto(updated)), now)
        return updated

    async def delete_customer(
        self, session: AsyncSession, customer_id: uuid.UUID, expected_version: int | None
    ) -> None:
        """Deletes a customer with no line in service (an erased one too: only a shell is left)."""
        await self._lock_current_version(session, customer_id, expected_version)
        ensure_deletable(await store.all_subscriptions(session, customer_id))
        await store.mark_customer_deleted(session, customer_id, now=self._clock.now(), actor=current_caller().subject)

    async def link_request(self, session: AsyncSession, customer_id: uuid.UUID, request_id: str) -> None:
        """Notes that the request being served (by the current caller) is about this customer, so that
        erasure finds the answer stored for it."""
        await link_request_to_customer(session, customer_id, request_id)

    async def _lock_current_version(
        self, session: AsyncSession, customer_id: uuid.UUID, expected_version: int | None
    ) -> Customer:
        """The locked customer; ABORTED when the caller's etag names an older version."""
        customer = await lookup.lock_existing_customer(session, customer_id)
        if expected_version is not None and expected_version != customer.version:
            raise etag_mismatch(CUSTOMER.format(customer_id))
        return customer

    async def _lock_changeable(
        self, session: AsyncSession, customer_id: uuid.UUID, expected_version: int | None
    ) -> Customer:
        """The locked customer at the expected version, refused when only an erased shell is left."""
        customer = await self._lock_current_version(session, customer_id, expected_version)
        ensure_not_erased(customer)
        return customer

    # Subscriptions -------------------------------------------------------------------------------

    async def create_subscription(
        self, session: AsyncSession, customer_id: uuid.UUID, subscription: Subscription
    ) -> Subscription:
        """Adds a line; its number must not be in service on another line."""
        customer = await self._lock_changeable(session, customer_id, None)
        ensure_customer_can_have_lines(customer)
        # A number without a country code is read in the customer's own country.
        region = phone_region(customer.profile, self.default_region)
        normalized = normalized_subscription(subscription, default_region=region, today=today(self._clock))
        await self._ensure_number_free(session, normalized.msisdn)
        now = self._clock.now()
        created = replace(normalized, customer_id=customer_id, create_time=now, update_time=now)
        await store.insert_subscription(session, created)
        await announce(
            session, customer_id, events_pb2.SubscriptionChanged(subscription=subscription_to_proto(created)), now
        )
        return created

    async def get_subscription(
        self, session: AsyncSession, customer_id: uuid.UUID, subscription_id: uuid.UUID
    ) -> Subscription:
        """One line; NOT_FOUND when the customer or the line does not exist."""
        await lookup.existing_customer(session, customer_id)
        return await lookup.existing_line(session, customer_id, subscription_id)

    async def list_subscriptions(
        self, session: AsyncSession, customer_id: uuid.UUID, page: PageRequest
    ) -> Page[Subscription]:
        """A page of the customer's lines."""
        await lookup.existing_customer(session, customer_id)
        rows = await store.list_subscriptions(session, customer_id, page)
        return Page.cut(rows, page, lambda s: [str(s.id)], {"parent": str(customer_id)})

    async def update_subscription(
        self,
        session: AsyncSession,
        customer_id: uuid.UUID,
        subscription_id: uuid.UUID,
        patch: SubscriptionPatch,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> Subscription:
        """Applies a field-masked change to a line."""
        await self._lock_changeable(session, customer_id, None)
        current = await store.lock_subscription(session, customer_id, subscription_id)
        name = SUBSCRIPTION.format(customer_id, subscription_id)
        if current is None:
            raise not_found("subscription", name)
        if expected_version is not None and expected_version != current.version:
            raise etag_mismatch(name)
        now = self._clock.now()
        updated = apply_subscription_update(current, patch, paths, now=now)
        await store.update_subscription(session, updated)
        await announce(
            session, customer_id, events_pb2.SubscriptionChanged(subscription=subscription_to_proto(updated)), now
        )
        return updated

    async def _ensure_number_free(self, session: AsyncSession, msisdn: str) -> None:
        if await store.msisdn_in_service(session, msisdn):
            raise AlreadyExists(
                "MSISDN_IN_SERVICE", f"{msisdn} is already in service on another line", {"msisdn": msisdn}
            )

    # Consent -------------------------------------------------------------------------------------

    async def record_consent(
        self, session: AsyncSession, customer_id: uuid.UUID, request: ConsentRequest
    ) -> ConsentRecord:
        """Appends a consent decision after checking it against the current state."""
        await self._lock_changeable(session, customer_id, None)
        state = consent_state_of(await store.latest_consent_records(session, customer_id))
        current = next((p for p in state.purposes if p.purpose is request.purpose), None)
        checked = check_consent_request(request, current)
        return await store.insert_consent_record(
            session,
            customer_id,
            purpose=checked.purpose,
            decision=checked.decision,
            channel=checked.channel,
            now=self._clock.now(),
            actor=current_caller().subject,
        )

    async def consent_state(self, session: AsyncSession, customer_id: uuid.UUID) -> ConsentState:
        """The current state per purpose."""
        await lookup.existing_customer(session, customer_id)
        return consent_state_of(await store.latest_consent_records(session, customer_id))

    async def list_consent_records(
        self, session: AsyncSession, customer_id: uuid.UUID, page: PageRequest
    ) -> Page[ConsentRecord]:
        """A page of the consent history, newest first."""
        await lookup.existing_customer(session, customer_id)
        rows = await store.list_consent_records(session, customer_id, page)
        return Page.cut(rows, page, lambda r: [r.id], {"parent": str(customer_id)})
