"""Whose customer a caller is calling about: which partner may reach a customer, and which customer
a complaint, a plan change or a tariff recommendation is about.

A partner may reach a customer it onboarded (the customer's `retailer_id`) or one that presented
themselves at its counter, i.e. that the partner found by phone number within the last half hour
(`GATEWAY_COUNTER_PRESENCE_SECONDS`). Customers' and employees' checks need neither: a customer's
own resources are named after them (`customers/{id}/...`, `accounts/{id}/...`).

The gateway learns `retailer_id` from the customer service (asking as itself, with a deadline) and
keeps the answer for a short while (`GATEWAY_OWNER_CACHE_SECONDS`): a customer handed over to
another partner is reachable by the old one for at most that long. Presence is kept in this
gateway process; behind several gateway replicas a partner's lookup and its next call may land on
different replicas, so partner channels should stick to one replica (the partner port is one
long-lived connection per shop system, which gRPC keeps on one replica).
"""

from collections.abc import Awaitable, Callable

import grpc
from cachetools import LRUCache, TTLCache

from chassis.caller import Caller
from chassis.clock import Clock
from chassis.errors import Unavailable
from crm.complaints.v1 import complaint_service_pb2, complaint_service_pb2_grpc
from crm.customer.v1 import customer_service_pb2, customer_service_pb2_grpc
from crm.offers.v1 import (
    next_best_action_service_pb2,
    next_best_action_service_pb2_grpc,
    offers_service_pb2,
    offers_service_pb2_grpc,
)

_GATEWAY = Caller(subject="gateway", kind="service")
_AS_GATEWAY = _GATEWAY.to_metadata()
_LOOKUP_SECONDS = 2.0
_KEPT = 200_000


class PartnerCustomers:
    """Which customers each partner may reach."""

    def __init__(
        self, customer_channel: grpc.aio.Channel, clock: Clock, *, owner_cache_seconds: float, presence_seconds: float
    ) -> None:
        self._customers = customer_service_pb2_grpc.CustomerServiceStub(customer_channel)
        timer = lambda: clock.now().timestamp()  # noqa: E731 - the caches follow the gateway's clock
        self._onboarded_by: TTLCache[str, str | None] = TTLCache(_KEPT, max(owner_cache_seconds, 0.001), timer=timer)
        self._cache_owners = owner_cache_seconds > 0
        self._presented: TTLCache[tuple[str, str], bool] = TTLCache(_KEPT, presence_seconds, timer=timer)

    def presented(self, partner: str, customer_id: str) -> None:
        """Records that `customer_id` presented themselves at `partner`'s counter."""
        self._presented[(partner, customer_id)] = True

    async def may_reach(self, partner: str, customer_id: str) -> bool:
        """Whether `partner` onboarded `customer_id` or the customer presented themselves at its counter."""
        if (partner, customer_id) in self._presented:
            return True
        return await self._retailer_of(customer_id) == partner

    async def _retailer_of(self, customer_id: str) -> str | None:
        if customer_id in self._onboarded_by:
            return self._onboarded_by[customer_id]
        try:
            customer = await self._customers.GetCustomer(
                customer_service_pb2.GetCustomerRequest(name=f"customers/{customer_id}"),
                metadata=_GATEWAY.to_metadata(),
                timeout=_LOOKUP_SECONDS,
            )
            retailer: str | None = customer.retailer_id or None
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise Unavailable(
                    "OWNER_LOOKUP_UNAVAILABLE", "the customer service could not say whose customer this is; retry"
                ) from None
            retailer = None  # no such customer: nobody's, and the answer must not say it does not exist
        if self._cache_owners:
            self._onboarded_by[customer_id] = retailer
        return retailer


class ResourceOwners:
    """The customer a resource is about when its name does not say (`complaints/{id}`,
    `planChanges/{id}`, `tariffRecommendations/{id}`, `offerPresentations/{id}`): asked of the service
    that owns it, once per resource. A resource never changes customer, so each answer is kept while
    memory allows."""

    def __init__(self, *, complaints: grpc.aio.Channel, offers: grpc.aio.Channel) -> None:
        complaint_service = complaint_service_pb2_grpc.ComplaintServiceStub(complaints)
        offer_service = offers_service_pb2_grpc.OfferServiceStub(offers)
        action_service = next_best_action_service_pb2_grpc.NextBestActionServiceStub(offers)

        async def complaint_customer(name: str) -> str:
            request = complaint_service_pb2.GetComplaintRequest(name=name)
            answer = await complaint_service.GetComplaint(request, metadata=_AS_GATEWAY, timeout=_LOOKUP_SECONDS)
            return str(answer.customer)

        async def plan_change_line(name: str) -> str:
            request = offers_service_pb2.GetPlanChangeRequest(name=name)
            answer = await offer_service.GetPlanChange(request, metadata=_AS_GATEWAY, timeout=_LOOKUP_SECONDS)
            return str(answer.subscription)

        async def recommendation_line(name: str) -> str:
            request = offers_service_pb2.GetTariffRecommendationRequest(name=name)
            answer = await offer_service.GetTariffRecommendation(request, metadata=_AS_GATEWAY, timeout=_LOOKUP_SECONDS)
            return str(answer.subscription)

        async def presentation_customer(name: str) -> str:
            request = next_best_action_service_pb2.GetOfferPresentationRequest(name=name)
            answer = await action_service.GetOfferPresentation(request, metadata=_AS_GATEWAY, timeout=_LOOKUP_SECONDS)
            return str(answer.customer)

        self._lookups: dict[str, Callable[[str], Awaitable[str]]] = {
            "complaints": complaint_customer,
            "planChanges": plan_change_line,
            "tariffRecommendations": recommendation_line,
            "offerPresentations": presentation_customer,
        }
        self._customer_of: LRUCache[str, str | None] = LRUCache(_KEPT)

    def knows(self, collection: str) -> bool:
        """Whether resources of `collection` are looked up here."""
        return collection in self._lookups

    async def customer_of(self, collection: str, key: str) -> str | None:
        """The customer id `collection/key` is about; None when there is no such resource."""
        name = f"{collection}/{key}"
        if name in self._customer_of:
            return self._customer_of[name]
        try:
            owner_name = await self._lookups[collection](name)
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None  # nobody's: refused as someone else's would be, without saying it does not exist
            raise Unavailable(
                "OWNER_LOOKUP_UNAVAILABLE", f"the service holding {collection} could not say whose this is; retry"
            ) from None
        first, _, rest = owner_name.partition("/")
        customer = rest.partition("/")[0] if first == "customers" and rest else None
        self._customer_of[name] = customer
        return customer
