"""Whether a ticket's customer exists, asked of the customer service over gRPC with a deadline.

Asked rather than followed from the customer feed: a ticket is often filed seconds after the
customer is created (at a shop counter), when a copy built from events may not have it yet, and the
answer carries the region that routing reads. The call is made before the ticket's transaction,
never inside it.
"""

import uuid

import grpc

from chassis.caller import Caller
from chassis.channels import open_channel
from chassis.errors import Unavailable, not_found
from chassis.names import CUSTOMER
from crm.customer.v1 import customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.complaints.complaints import CustomerFacts

CUSTOMER_SERVICE = "crm.customer.v1.CustomerService"
SERVICE_CALLER = Caller(subject="complaints-service", kind="service")
"""Who the complaints service is when it calls another service."""


class CustomerDirectory:
    """The customer service as the complaints service asks it."""

    def __init__(self, target: str, *, deadline_seconds: float) -> None:
        self._channel = open_channel(target, service_names=[CUSTOMER_SERVICE])
        self._customers = CustomerServiceStub(self._channel)
        self._deadline = deadline_seconds

    async def customer_facts(self, customer_id: uuid.UUID) -> CustomerFacts:
        """What routing needs of the customer; NOT_FOUND CUSTOMER_NOT_FOUND when it does not exist,
        UNAVAILABLE CUSTOMER_SERVICE_UNAVAILABLE when the customer service does not answer in time."""
        name = CUSTOMER.format(customer_id)
        try:
            customer = await self._customers.GetCustomer(
                customer_service_pb2.GetCustomerRequest(name=name),
                timeout=self._deadline,
                metadata=SERVICE_CALLER.to_metadata(),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise not_found("customer", name) from None
            raise Unavailable(
                "CUSTOMER_SERVICE_UNAVAILABLE",
                f"the customer service could not say whether {name} exists ({error.code().name}); retry",
                {"customer": name},
            ) from None
        regions = [
            medium.postal_address.region for medium in customer.contact_media if medium.HasField("postal_address")
        ]
        return CustomerFacts(region=regions[0] if regions else "")

    def start(self) -> None:
        """Nothing to start: the channel connects on the first call."""

    async def stop(self) -> None:
        """Closes the channel."""
        await self._channel.close()
