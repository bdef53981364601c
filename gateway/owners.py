"""Whose customer a caller is calling about: which partner may reach a customer, and which customer
a complaint is about.

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

import grpc
from cachetools import LRUCache, TTLCache

from chassis.caller import Caller
from chassis.clock import Clock
from chassis.errors import Unavailable
from crm.complaints.v1 import complaint_service_pb2, complaint_service_pb2_grpc
from crm.customer.v1 import customer_service_pb2, customer_service_pb2_grpc

_GATEWAY = Caller(subject="gateway", kind="service")
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


class ComplaintOwners:
    """The customer each complaint is about, asked of the complaints service once per complaint (a
    complaint never changes customer, so the answer is kept while memory allows)."""

    def __init__(self, complaints_channel: grpc.aio.Channel) -> None:
        self._complaints = complaint_service_pb2_grpc.ComplaintServiceStub(complaints_channel)
        self._customer_of: LRUCache[str, str] = LRUCache(_KEPT)

    async def customer_of(self, complaint_id: str) -> str | None:
        """The customer id of `complaint_id`; None when there is no such complaint."""
        if complaint_id in self._customer_of:
            return self._customer_of[complaint_id]
        try:
            complaint = await self._complaints.GetComplaint(
                complaint_service_pb2.GetComplaintRequest(name=f"complaints/{complaint_id}"),
                metadata=_GATEWAY.to_metadata(),
                timeout=_LOOKUP_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None  # nobody's: the caller is refused as for someone else's complaint
            raise Unavailable(
                "OWNER_LOOKUP_UNAVAILABLE", "the complaints service could not say whose complaint this is; retry"
            ) from None
        customer: str = complaint.customer.removeprefix("customers/")
        self._customer_of[complaint_id] = customer
        return customer
