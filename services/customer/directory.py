"""The customer directory: each use case as one function over a database session, joining the
domain's rules with the store. Every function runs inside the caller's transaction.

A change others must hear about writes its event to the outbox in that same transaction, after it
locked the customer's row: events of one customer (aggregate `customers/{customer}`, lines included)
are numbered in the order their changes committed.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Generic, TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.caller import current_caller
from chassis.errors import AlreadyExists, etag_mismatch, not_found
from chassis.outbox import append_event, erase_aggregate_payloads
from chassis.pagination import Criteria, PageRequest, SortKey, next_page_token
from crm.customer.v1 import events_pb2
from services.customer import domain, store, usage_store
from services.customer.mapping import customer_name, customer_to_proto, subscription_name, subscription_to_proto

CUSTOMER_AGGREGATE = "customer"

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items of one page and the token of the next ("" on the last page)."""

    items: list[T]
    next_page_token: str


def _page(rows: list[T], page: PageRequest, sort_key: Callable[[T], SortKey], criteria: Criteria) -> Page[T]:
    if len(rows) <= page.size:
        return Page(rows, "")
    items = rows[: page.size]
    return Page(items, next_page_token(sort_key(items[-1]), criteria))


def _now() -> datetime:
    return datetime.now(UTC)


def _today() -> date:
    return _now().date()


class CustomerDirectory:
    """Use cases of the customer system of record."""

    def __init__(self, *, default_region: str) -> None:
        self.default_region = default_region

    # Customers -----------------------------------------------------------------------------------

    async def create_customer(
        self, session: AsyncSession, profile: domain.CustomerProfile, requested_status: domain.CustomerStatus | None
    ) -> domain.Customer:
        """Validates and stores a new customer."""
        status = domain.initial_status(requested_status)
        normalized = domain.normalized_profile(
            profile, default_region=self.default_region, today=_today(), path="customer"
        )
        now, actor = _now(), current_caller().subject
        customer = domain.Customer(
            id=uuid.uuid4(),
            profile=normalized,
            status=status,
            create_time=now,
            creator=actor,
            update_time=now,
            updater=actor,
        )
        await store.insert_customer(session, customer)
        await _announce(session, customer.id, events_pb2.CustomerCreated(customer=customer_to_proto(customer)))
        return customer

    async def get_customer(self, session: AsyncSession, customer_id: uuid.UUID) -> domain.Customer:
        """The customer; NOT_FOUND when absent or deleted."""
        customer = await store.get_customer(session, customer_id)
        if customer is None:
            raise not_found("customer", customer_name(customer_id))
        return customer

    async def list_customers(self, session: AsyncSession, page: PageRequest) -> Page[domain.Customer]:
        """A page of all customers."""
        rows = await store.list_customers(session, page)
        return _page(rows, page, lambda c: [str(c.id)], {})

    async def search_customers(
        self, session: AsyncSession, criteria: domain.SearchCriteria, page: PageRequest
    ) -> Page[domain.Customer]:
        """A page of customers matching the criteria."""
        rows = await store.search_customers(session, criteria, page)
        return _page(rows, page, lambda c: [str(c.id)], criteria.as_dict())

    async def update_customer(
        self,
        session: AsyncSession,
        customer_id: uuid.UUID,
        patch: domain.ProfilePatch,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> domain.Customer:
        """Applies a field-masked change; concurrent updates queue on the row and never overwrite
        each other silently (a stale etag is ABORTED)."""
        current = await self._lock(session, customer_id, expected_version)
        merged = domain.apply_profile_update(current.profile, patch, paths)
        normalized = domain.normalized_profile(
            merged, default_region=self.default_region, today=_today(), path="customer"
        )
        updated = replace(
            current,
            profile=normalized,
            update_time=_now(),
            updater=current_caller().subject,
            version=current.version + 1,
        )
        await store.update_customer(session, updated)
        await _announce(session, customer_id, events_pb2.CustomerUpdated(customer=customer_to_proto(updated)))
        return updated

    async def change_status(
        self, session: AsyncSession, customer_id: uuid.UUID, change: domain.StatusChange, expected_version: int | None
    ) -> domain.Customer:
        """Moves the customer through its lifecycle."""
        current = await self._lock(session, customer_id, expected_version)
        updated = domain.change_status(current, change, actor=current_caller().subject, now=_now())
        await store.update_customer(session, updated)
        await _announce(session, customer_id, events_pb2.CustomerUpdated(customer=customer_to_proto(updated)))
        return updated

    async def delete_customer(
        self, session: AsyncSession, customer_id: uuid.UUID, expected_version: int | None
    ) -> None:
        """Deletes a customer with no line in service (an erased one too: only a shell is left)."""
        await self._lock(session, customer_id, expected_version, erased_allowed=True)
        domain.ensure_deletable(await store.all_subscriptions(session, customer_id))
        await store.mark_customer_deleted(session, customer_id, now=_now(), actor=current_caller().subject)

    async def erase_customer(self, session: AsyncSession, customer_id: uuid.UUID) -> domain.Customer:
        """Erases the customer's personal data (right to be forgotten), deleted customer or not, and
        returns the shell that remains (see the domain's erasure rules). The lines' numbers, the
        stored answers of the customer's requests and the payloads of the customer's earlier events
        go too; CustomerErased tells every other service to erase its copy. Erasing an erased
        customer changes and announces nothing."""
        current = await store.lock_customer_for_erasure(session, customer_id)
        if current is None:
            raise not_found("customer", customer_name(customer_id))
        if current.erase_time is not None:
            return current
        lines = await store.all_subscriptions(session, customer_id)
        domain.ensure_erasable(lines)
        now = _now()
        erased = domain.erased_customer(current, actor=current_caller().subject, now=now)
        await store.update_customer(session, erased)
        for line in lines:
            await store.update_subscription(session, domain.erased_subscription(line, now=now))
        await store.forget_request_answers(session, customer_id)
        await usage_store.forget_locations(session, [line.id for line in lines])
        name = customer_name(customer_id)
        await erase_aggregate_payloads(session, aggregate_type=CUSTOMER_AGGREGATE, aggregate_id=name)
        await _announce(session, customer_id, events_pb2.CustomerErased(customer=name))
        return erased

    async def link_request(self, session: AsyncSession, customer_id: uuid.UUID, request_id: str) -> None:
        """Notes that the request being served (by the current caller) is about this customer, so that
        erasure finds the answer stored for it."""
        await store.link_request_to_customer(
            session, caller=current_caller().subject, request_id=request_id, customer_id=customer_id
        )

    async def _lock(
        self,
        session: AsyncSession,
        customer_id: uuid.UUID,
        expected_version: int | None,
        *,
        erased_allowed: bool = False,
    ) -> domain.Customer:
        customer = await store.lock_customer(session, customer_id)
        if customer is None:
            raise not_found("customer", customer_name(customer_id))
        if expected_version is not None and expected_version != customer.version:
            raise etag_mismatch(customer_name(customer_id))
        if not erased_allowed:
            domain.ensure_not_erased(customer)
        return customer

    # Subscriptions -------------------------------------------------------------------------------

    async def create_subscription(
        self, session: AsyncSession, customer_id: uuid.UUID, subscription: domain.Subscription
    ) -> domain.Subscription:
        """Adds a line; its number must not be in service on another line."""
        customer = await self._lock(session, customer_id, None)
        domain.ensure_customer_can_have_lines(customer)
        # A number without a country code is read in the customer's own country.
        region = domain.phone_region(customer.profile, self.default_region)
        normalized = domain.normalized_subscription(subscription, default_region=region, today=_today())
        await self._ensure_number_free(session, normalized.msisdn)
        now = _now()
        created = replace(normalized, customer_id=customer_id, create_time=now, update_time=now)
        await store.insert_subscription(session, created)
        await _announce(
            session, customer_id, events_pb2.SubscriptionChanged(subscription=subscription_to_proto(created))
        )
        return created

    async def get_subscription(
        self, session: AsyncSession, customer_id: uuid.UUID, subscription_id: uuid.UUID
    ) -> domain.Subscription:
        """One line; NOT_FOUND when the customer has no such line."""
        await self.get_customer(session, customer_id)
        subscription = await store.get_subscription(session, customer_id, subscription_id)
        if subscription is None:
            raise not_found("subscription", subscription_name(customer_id, subscription_id))
        return subscription

    async def list_subscriptions(
        self, session: AsyncSession, customer_id: uuid.UUID, page: PageRequest
    ) -> Page[domain.Subscription]:
        """A page of the customer's lines."""
        await self.get_customer(session, customer_id)
        rows = await store.list_subscriptions(session, customer_id, page)
        return _page(rows, page, lambda s: [str(s.id)], {"parent": str(customer_id)})

    async def update_subscription(
        self,
        session: AsyncSession,
        customer_id: uuid.UUID,
        subscription_id: uuid.UUID,
        patch: domain.SubscriptionPatch,
        paths: Sequence[str],
        expected_version: int | None,
    ) -> domain.Subscription:
        """Applies a field-masked change to a line."""
        await self._lock(session, customer_id, None)
        current = await store.lock_subscription(session, customer_id, subscription_id)
        name = subscription_name(customer_id, subscription_id)
        if current is None:
            raise not_found("subscription", name)
        if expected_version is not None and expected_version != current.version:
            raise etag_mismatch(name)
        updated = domain.apply_subscription_update(current, patch, paths, now=_now())
        await store.update_subscription(session, updated)
        await _announce(
            session, customer_id, events_pb2.SubscriptionChanged(subscription=subscription_to_proto(updated))
        )
        return updated

    async def _ensure_number_free(self, session: AsyncSession, msisdn: str) -> None:
        if await store.msisdn_in_service(session, msisdn):
            raise AlreadyExists(
                "MSISDN_IN_SERVICE", f"{msisdn} is already in service on another line", {"msisdn": msisdn}
            )

    # Consent -------------------------------------------------------------------------------------

    async def record_consent(
        self, session: AsyncSession, customer_id: uuid.UUID, request: domain.ConsentRequest
    ) -> domain.ConsentRecord:
        """Appends a consent decision after checking it against the current state."""
        await self._lock(session, customer_id, None)
        state = domain.consent_state(await store.latest_consent_records(session, customer_id))
        current = next((p for p in state.purposes if p.purpose is request.purpose), None)
        domain.check_consent_request(request, current)
        assert request.purpose and request.decision and request.channel
        return await store.insert_consent_record(
            session,
            customer_id,
            purpose=request.purpose,
            decision=request.decision,
            channel=request.channel,
            now=_now(),
            actor=current_caller().subject,
        )

    async def consent_state(self, session: AsyncSession, customer_id: uuid.UUID) -> domain.ConsentState:
        """The current state per purpose."""
        await self.get_customer(session, customer_id)
        return domain.consent_state(await store.latest_consent_records(session, customer_id))

    async def list_consent_records(
        self, session: AsyncSession, customer_id: uuid.UUID, page: PageRequest
    ) -> Page[domain.ConsentRecord]:
        """A page of the consent history, newest first."""
        await self.get_customer(session, customer_id)
        rows = await store.list_consent_records(session, customer_id, page)
        return _page(rows, page, lambda r: [r.id], {"parent": str(customer_id)})


async def _announce(session: AsyncSession, customer_id: uuid.UUID, event: Message) -> None:
    await append_event(
        session, aggregate_type=CUSTOMER_AGGREGATE, aggregate_id=customer_name(customer_id), payload=event
    )
