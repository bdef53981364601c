"""Builders of valid complaints requests."""

from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from tests.support import request_id


def ticket(customer: str, **fields: object) -> complaint_pb2.Complaint:
    """A valid billing complaint filed in the app."""
    values: dict[str, object] = {
        "customer": customer,
        "type": complaint_pb2.COMPLAINT_TYPE_COMPLAINT,
        "category": complaint_pb2.COMPLAINT_CATEGORY_BILLING_DISPUTE,
        "description": "Hisobimdan ikki marta pul yechildi — Деньги списаны дважды",
        "channel": common_pb2.CHANNEL_APP,
        "contact": "+998901234567",
    }
    values.update(fields)
    return complaint_pb2.Complaint(**values)  # type: ignore[arg-type]


async def file(stub: ComplaintServiceStub, customer: str, **fields: object) -> complaint_pb2.Complaint:
    """Files a valid ticket."""
    return await stub.CreateComplaint(
        complaint_service_pb2.CreateComplaintRequest(complaint=ticket(customer, **fields), request_id=request_id()),
        timeout=10,
    )


async def start(stub: ComplaintServiceStub, name: str, reason: str = "looking into it") -> complaint_pb2.Complaint:
    """Starts work on a ticket."""
    return await stub.StartComplaint(
        complaint_service_pb2.StartComplaintRequest(name=name, reason=reason, request_id=request_id()), timeout=10
    )


async def resolve(
    stub: ComplaintServiceStub, name: str, points: int = 0, code: str = "refund"
) -> complaint_pb2.Complaint:
    """Resolves a ticket in progress."""
    return await stub.ResolveComplaint(
        complaint_service_pb2.ResolveComplaintRequest(
            name=name,
            resolution=complaint_pb2.Resolution(
                text="Refunded the double charge", code=code, compensation_points=points
            ),
            request_id=request_id(),
        ),
        timeout=10,
    )
