"""`crm.customer.v1.CustomerService` over gRPC: maps messages to the directory's use cases and back.

Retryable mutations run once per request id (UpdateSubscription when it carries one); the answer
stored for a request about a customer is linked to that customer, so that erasure can drop it.
EraseCustomer returns the erased shell: names read "erased", no contact media, no birth date; lines
keep their tariff but lose their number.
"""

import uuid
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import Database
from chassis.etags import version_from_etag
from chassis.idempotency import IdempotentRunner
from chassis.names import CUSTOMER, SUBSCRIPTION
from chassis.pagination import read_page_request
from crm.customer.v1 import (
    customer_pb2,
    customer_service_pb2,
    customer_service_pb2_grpc,
)
from services.customer.customers import mapping
from services.customer.customers.lifecycle import Customer, StatusChange
from services.customer.customers.search import search_criteria
from services.customer.customers.use_cases import CustomerDirectory
from services.customer.request_answers import idempotency_keys

# Handlers neither read nor write through the context: requests and answers are their arguments.
Context = grpc.aio.ServicerContext[Message, Message]
EraseCustomer = Callable[[AsyncSession, uuid.UUID], Awaitable[Customer]]
"""Erasure of a customer across every part of the service (assembled above the parts)."""


class CustomerServicer(customer_service_pb2_grpc.CustomerServiceServicer):
    """The customer system of record's gRPC face."""

    def __init__(self, database: Database, directory: CustomerDirectory, erase_customer: EraseCustomer) -> None:
        self._database = database
        self._directory = directory
        self._erase_customer = erase_customer
        self._once = IdempotentRunner(database, idempotency_keys)

    async def GetCustomer(
        self, request: customer_service_pb2.GetCustomerRequest, context: Context
    ) -> customer_pb2.Customer:
        customer_id = CUSTOMER.parse_uuid(request.name)
        async with self._database.transaction() as session:
            customer = await self._directory.get_customer(session, customer_id)
        return mapping.customer_to_proto(customer)

    async def ListCustomers(
        self, request: customer_service_pb2.ListCustomersRequest, context: Context
    ) -> customer_service_pb2.ListCustomersResponse:
        page = read_page_request(request.page_size, request.page_token, {})
        async with self._database.transaction() as session:
            result = await self._directory.list_customers(session, page)
        return customer_service_pb2.ListCustomersResponse(
            customers=[mapping.customer_to_proto(c) for c in result.items], next_page_token=result.next_page_token
        )

    async def CreateCustomer(
        self, request: customer_service_pb2.CreateCustomerRequest, context: Context
    ) -> customer_pb2.Customer:
        profile = mapping.profile_from_proto(request.customer)
        status = mapping.status_from_proto(request.customer.status, "customer.status")

        async def create(session: AsyncSession) -> customer_pb2.Customer:
            customer = await self._directory.create_customer(session, profile, status)
            await self._directory.link_request(session, customer.id, request.request_id)
            return mapping.customer_to_proto(customer)

        return await self._once.run(request, customer_pb2.Customer, create)

    async def UpdateCustomer(
        self, request: customer_service_pb2.UpdateCustomerRequest, context: Context
    ) -> customer_pb2.Customer:
        customer_id = CUSTOMER.parse_uuid(request.customer.name, "customer.name")
        expected_version = version_from_etag(request.customer.etag, "customer.etag")
        patch = mapping.profile_patch_from_proto(request.customer)
        paths = list(request.update_mask.paths)
        async with self._database.transaction() as session:
            updated = await self._directory.update_customer(session, customer_id, patch, paths, expected_version)
        return mapping.customer_to_proto(updated)

    async def DeleteCustomer(
        self, request: customer_service_pb2.DeleteCustomerRequest, context: Context
    ) -> empty_pb2.Empty:
        customer_id = CUSTOMER.parse_uuid(request.name)
        expected_version = version_from_etag(request.etag)
        async with self._database.transaction() as session:
            await self._directory.delete_customer(session, customer_id, expected_version)
        return empty_pb2.Empty()

    async def ChangeCustomerStatus(
        self, request: customer_service_pb2.ChangeCustomerStatusRequest, context: Context
    ) -> customer_pb2.Customer:
        customer_id = CUSTOMER.parse_uuid(request.name)
        expected_version = version_from_etag(request.etag)
        change = StatusChange(
            status=mapping.status_from_proto(request.status, "status"),
            churn_reason=mapping.churn_reason_from_proto(request.churn_reason, "churn_reason"),
            churn_detail=request.churn_detail,
        )

        async def change_status(session: AsyncSession) -> customer_pb2.Customer:
            customer = await self._directory.change_status(session, customer_id, change, expected_version)
            await self._directory.link_request(session, customer_id, request.request_id)
            return mapping.customer_to_proto(customer)

        return await self._once.run(request, customer_pb2.Customer, change_status)

    async def SearchCustomers(
        self, request: customer_service_pb2.SearchCustomersRequest, context: Context
    ) -> customer_service_pb2.SearchCustomersResponse:
        criteria = search_criteria(
            phone_number=request.phone_number,
            phone_region_code=request.phone_region_code,
            name_query=request.name_query,
            status=mapping.status_from_proto(request.status, "status"),
            region=request.region,
            retailer_id=request.retailer_id,
            default_region=self._directory.default_region,
        )
        page = read_page_request(request.page_size, request.page_token, criteria.as_dict())
        async with self._database.transaction() as session:
            result = await self._directory.search_customers(session, criteria, page)
        return customer_service_pb2.SearchCustomersResponse(
            customers=[mapping.customer_to_proto(c) for c in result.items], next_page_token=result.next_page_token
        )

    async def GetSubscription(
        self, request: customer_service_pb2.GetSubscriptionRequest, context: Context
    ) -> customer_pb2.Subscription:
        customer_id, subscription_id = SUBSCRIPTION.parse_uuids(request.name)
        async with self._database.transaction() as session:
            subscription = await self._directory.get_subscription(session, customer_id, subscription_id)
        return mapping.subscription_to_proto(subscription)

    async def ListSubscriptions(
        self, request: customer_service_pb2.ListSubscriptionsRequest, context: Context
    ) -> customer_service_pb2.ListSubscriptionsResponse:
        customer_id = CUSTOMER.parse_uuid(request.parent, "parent")
        page = read_page_request(request.page_size, request.page_token, {"parent": str(customer_id)})
        async with self._database.transaction() as session:
            result = await self._directory.list_subscriptions(session, customer_id, page)
        return customer_service_pb2.ListSubscriptionsResponse(
            subscriptions=[mapping.subscription_to_proto(s) for s in result.items],
            next_page_token=result.next_page_token,
        )

    async def CreateSubscription(
        self, request: customer_service_pb2.CreateSubscriptionRequest, context: Context
    ) -> customer_pb2.Subscription:
        customer_id = CUSTOMER.parse_uuid(request.parent, "parent")
        subscription = mapping.subscription_from_proto(request.subscription, customer_id)

        async def create(session: AsyncSession) -> customer_pb2.Subscription:
            created = await self._directory.create_subscription(session, customer_id, subscription)
            await self._directory.link_request(session, customer_id, request.request_id)
            return mapping.subscription_to_proto(created)

        return await self._once.run(request, customer_pb2.Subscription, create)

    async def UpdateSubscription(
        self, request: customer_service_pb2.UpdateSubscriptionRequest, context: Context
    ) -> customer_pb2.Subscription:
        customer_id, subscription_id = SUBSCRIPTION.parse_uuids(request.subscription.name, "subscription.name")
        expected_version = version_from_etag(request.subscription.etag, "subscription.etag")
        patch = mapping.subscription_patch_from_proto(request.subscription)
        paths = list(request.update_mask.paths)

        async def update(session: AsyncSession) -> customer_pb2.Subscription:
            updated = await self._directory.update_subscription(
                session, customer_id, subscription_id, patch, paths, expected_version
            )
            if request.request_id:
                await self._directory.link_request(session, customer_id, request.request_id)
            return mapping.subscription_to_proto(updated)

        if request.request_id:
            return await self._once.run(request, customer_pb2.Subscription, update)
        # Without a request id every call updates, as it did before the field existed.
        async with self._database.transaction() as session:
            return await update(session)

    async def RecordConsent(
        self, request: customer_service_pb2.RecordConsentRequest, context: Context
    ) -> customer_pb2.ConsentRecord:
        customer_id = CUSTOMER.parse_uuid(request.parent, "parent")
        decision = mapping.consent_request_from_proto(request.purpose, request.decision, request.channel)

        async def record(session: AsyncSession) -> customer_pb2.ConsentRecord:
            record = await self._directory.record_consent(session, customer_id, decision)
            await self._directory.link_request(session, customer_id, request.request_id)
            return mapping.consent_record_to_proto(record)

        return await self._once.run(request, customer_pb2.ConsentRecord, record)

    async def GetConsentState(
        self, request: customer_service_pb2.GetConsentStateRequest, context: Context
    ) -> customer_pb2.ConsentState:
        customer_id = mapping.CONSENT_STATE.parse_uuid(request.name)
        async with self._database.transaction() as session:
            state = await self._directory.consent_state(session, customer_id)
        return mapping.consent_state_to_proto(customer_id, state)

    async def ListConsentRecords(
        self, request: customer_service_pb2.ListConsentRecordsRequest, context: Context
    ) -> customer_service_pb2.ListConsentRecordsResponse:
        customer_id = CUSTOMER.parse_uuid(request.parent, "parent")
        page = read_page_request(request.page_size, request.page_token, {"parent": str(customer_id)})
        async with self._database.transaction() as session:
            result = await self._directory.list_consent_records(session, customer_id, page)
        return customer_service_pb2.ListConsentRecordsResponse(
            consent_records=[mapping.consent_record_to_proto(r) for r in result.items],
            next_page_token=result.next_page_token,
        )

    async def EraseCustomer(
        self, request: customer_service_pb2.EraseCustomerRequest, context: Context
    ) -> customer_pb2.Customer:
        customer_id = CUSTOMER.parse_uuid(request.name)

        async def erase(session: AsyncSession) -> customer_pb2.Customer:
            return mapping.customer_to_proto(await self._erase_customer(session, customer_id))

        return await self._once.run(request, customer_pb2.Customer, erase)
