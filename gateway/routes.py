"""What the gateway exposes: a declaration per backend service, read by the forwarder.

Exposing another service's public methods is one more entry here, not a handler per method.
"""

from dataclasses import dataclass

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from crm.complaints.v1 import complaint_service_pb2
from crm.customer.v1 import billing_pb2, customer_service_pb2, segments_pb2, usage_pb2
from crm.loyalty.v1 import loyalty_service_pb2
from crm.offers.v1 import next_best_action_service_pb2, offers_service_pb2


@dataclass(frozen=True)
class ExposedService:
    """A backend service whose methods the gateway forwards."""

    descriptor: ServiceDescriptor
    """The service as the contract declares it."""
    target_variable: str
    """Environment variable holding the backend's `host:port`."""
    default_target: str
    """Where the backend listens when the variable is unset (local runs)."""
    internal_methods: frozenset[str] = frozenset()
    """Methods only other services in the cluster may call; the gateway does not expose them."""

    @property
    def name(self) -> str:
        """Full service name, e.g. `crm.customer.v1.CustomerService`."""
        return self.descriptor.full_name

    @property
    def public_methods(self) -> list[MethodDescriptor]:
        """The methods callers outside the cluster may reach."""
        return [m for m in self.descriptor.methods if m.name not in self.internal_methods]


CUSTOMER_SERVICE = "crm.customer.v1.CustomerService"
"""The customer service, which the gateway also asks itself (whose customer a partner calls about)."""
CUSTOMER_TARGET = ("GATEWAY_CUSTOMER_TARGET", "127.0.0.1:50051")
LOYALTY_TARGET = ("GATEWAY_LOYALTY_TARGET", "127.0.0.1:50052")
OFFERS_SERVICE = "crm.offers.v1.OfferService"
"""The offers service, which the gateway also asks itself (which line a plan change is about)."""
OFFERS_TARGET = ("GATEWAY_OFFERS_TARGET", "127.0.0.1:50053")
COMPLAINTS_SERVICE = "crm.complaints.v1.ComplaintService"
"""The complaints service, which the gateway also asks itself (which customer a complaint is about)."""
COMPLAINTS_TARGET = ("GATEWAY_COMPLAINTS_TARGET", "127.0.0.1:50054")

EXPOSED_SERVICES = (
    ExposedService(
        descriptor=customer_service_pb2.DESCRIPTOR.services_by_name["CustomerService"],
        target_variable=CUSTOMER_TARGET[0],
        default_target=CUSTOMER_TARGET[1],
    ),
    ExposedService(
        descriptor=usage_pb2.DESCRIPTOR.services_by_name["UsageService"],
        target_variable=CUSTOMER_TARGET[0],
        default_target=CUSTOMER_TARGET[1],
        # Network mediation feeds usage inside the cluster; outside callers only read profiles.
        internal_methods=frozenset({"IngestUsage"}),
    ),
    ExposedService(
        descriptor=billing_pb2.DESCRIPTOR.services_by_name["BillingService"],
        target_variable=CUSTOMER_TARGET[0],
        default_target=CUSTOMER_TARGET[1],
        # The billing system records facts inside the cluster; outside callers only read summaries.
        internal_methods=frozenset({"RecordInvoice", "RecordPayment"}),
    ),
    ExposedService(
        descriptor=segments_pb2.DESCRIPTOR.services_by_name["SegmentService"],
        target_variable=CUSTOMER_TARGET[0],
        default_target=CUSTOMER_TARGET[1],
    ),
    ExposedService(
        descriptor=loyalty_service_pb2.DESCRIPTOR.services_by_name["LoyaltyService"],
        target_variable=LOYALTY_TARGET[0],
        default_target=LOYALTY_TARGET[1],
        # The schedule runs inside the service; operators trigger it from inside the cluster only.
        internal_methods=frozenset({"RunScheduledWork"}),
    ),
    ExposedService(
        descriptor=complaint_service_pb2.DESCRIPTOR.services_by_name["ComplaintService"],
        target_variable=COMPLAINTS_TARGET[0],
        default_target=COMPLAINTS_TARGET[1],
        # The schedule (SLA breaches, timeouts) runs inside the service, as loyalty's does.
        internal_methods=frozenset({"RunScheduledWork"}),
    ),
    ExposedService(
        descriptor=offers_service_pb2.DESCRIPTOR.services_by_name["OfferService"],
        target_variable=OFFERS_TARGET[0],
        default_target=OFFERS_TARGET[1],
    ),
    ExposedService(
        descriptor=next_best_action_service_pb2.DESCRIPTOR.services_by_name["NextBestActionService"],
        target_variable=OFFERS_TARGET[0],
        default_target=OFFERS_TARGET[1],
    ),
)
