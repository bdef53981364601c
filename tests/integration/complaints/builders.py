"""Builders of valid complaints requests."""

import uuid

from google.type import timeofday_pb2

from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, departments_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.support import create_request, person, request_id


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


ALWAYS_OPEN = [
    departments_pb2.OpeningHours(
        day=day,  # type: ignore[arg-type]
        open_time=timeofday_pb2.TimeOfDay(hours=0),
        close_time=timeofday_pb2.TimeOfDay(hours=23, minutes=59, seconds=59),
    )
    for day in range(1, 8)
]
"""Every day around the clock: business time is wall time, so figures can be worked out by hand."""


def department(
    display_name: str = "Billing disputes",
    *,
    policy: departments_pb2.AssignmentPolicy = departments_pb2.ASSIGNMENT_POLICY_ROUND_ROBIN,
    first_response_minutes: int = 60,
    resolution_minutes: int = 600,
) -> departments_pb2.Department:
    """A department open around the clock in UTC, with the same targets for every priority."""
    return departments_pb2.Department(
        display_name=display_name,
        calendar=departments_pb2.BusinessCalendar(time_zone="UTC", opening_hours=ALWAYS_OPEN),
        sla_targets=[
            departments_pb2.SlaTarget(
                priority=priority,  # type: ignore[arg-type]
                first_response_minutes=first_response_minutes,
                resolution_minutes=resolution_minutes,
            )
            for priority in (
                complaint_pb2.PRIORITY_LOW,
                complaint_pb2.PRIORITY_MEDIUM,
                complaint_pb2.PRIORITY_HIGH,
                complaint_pb2.PRIORITY_URGENT,
            )
        ],
        assignment_policy=policy,
    )


async def create_department(
    stub: ComplaintServiceStub, department_id: str, message: departments_pb2.Department | None = None
) -> departments_pb2.Department:
    """Creates a department (open around the clock unless `message` says otherwise)."""
    return await stub.CreateDepartment(
        complaint_service_pb2.CreateDepartmentRequest(
            department=message or department(), department_id=department_id, request_id=request_id()
        ),
        timeout=10,
    )


async def create_agent(
    stub: ComplaintServiceStub, department: str, agent_id: str, *, available: bool = True, senior: bool = False
) -> departments_pb2.Agent:
    """Adds an agent to `department` (`departments/{department}`)."""
    return await stub.CreateAgent(
        complaint_service_pb2.CreateAgentRequest(
            parent=department,
            agent=departments_pb2.Agent(display_name=f"Agent {agent_id}", available=available, senior=senior),
            agent_id=agent_id,
            request_id=request_id(),
        ),
        timeout=10,
    )


async def route_region_to(
    stub: ComplaintServiceStub, region: str, department: str, **criteria: object
) -> departments_pb2.RoutingRule:
    """A rule sending the tickets of customers living in `region` (and meeting `criteria`) to
    `department`; tests give each their own region so that their rules route no other test's tickets."""
    rule_id = f"rule-{uuid.uuid4().hex[:12]}"
    values: dict[str, object] = {"region": region, "department": department, "priority": complaint_pb2.PRIORITY_MEDIUM}
    values.update(criteria)
    return await stub.CreateRoutingRule(
        complaint_service_pb2.CreateRoutingRuleRequest(
            routing_rule=departments_pb2.RoutingRule(**values),  # type: ignore[arg-type]
            routing_rule_id=rule_id,
            request_id=request_id(),
        ),
        timeout=10,
    )


def fresh_region() -> str:
    """A region no other test's customer lives in."""
    return f"Test viloyati {uuid.uuid4().hex[:8]}"


async def customer_in(customers: CustomerServiceStub, region: str) -> str:
    """A new customer of the real customer service living in `region`."""
    return (await customers.CreateCustomer(create_request(person(region=region)), timeout=5)).name


async def await_customer(stub: ComplaintServiceStub, name: str) -> complaint_pb2.Complaint:
    """Puts a ticket in progress to wait on the customer."""
    return await stub.AwaitCustomer(
        complaint_service_pb2.AwaitCustomerRequest(name=name, reason="need the invoice", request_id=request_id()),
        timeout=10,
    )


async def resume(stub: ComplaintServiceStub, name: str) -> complaint_pb2.Complaint:
    """Takes up a waiting ticket again."""
    return await stub.ResumeComplaint(
        complaint_service_pb2.ResumeComplaintRequest(name=name, reason="answered", request_id=request_id()),
        timeout=10,
    )


async def accept(stub: ComplaintServiceStub, name: str) -> complaint_pb2.Complaint:
    """The customer accepts a resolution: the ticket closes."""
    return await stub.AcceptResolution(
        complaint_service_pb2.AcceptResolutionRequest(name=name, request_id=request_id()), timeout=10
    )


async def reopen(stub: ComplaintServiceStub, name: str) -> complaint_pb2.Complaint:
    """The customer rejects a resolution: the ticket is worked again."""
    return await stub.RejectResolution(
        complaint_service_pb2.RejectResolutionRequest(name=name, reason="still charged", request_id=request_id()),
        timeout=10,
    )


async def reject(stub: ComplaintServiceStub, name: str) -> complaint_pb2.Complaint:
    """Rejects an acknowledged ticket (not a complaint the operator takes up)."""
    return await stub.RejectComplaint(
        complaint_service_pb2.RejectComplaintRequest(name=name, reason="not ours", request_id=request_id()),
        timeout=10,
    )


async def answer_satisfaction(stub: ComplaintServiceStub, name: str, csat: int, nps: int) -> complaint_pb2.Complaint:
    """The customer's satisfaction answer for a closed ticket."""
    return await stub.RecordSatisfaction(
        complaint_service_pb2.RecordSatisfactionRequest(
            name=name, satisfaction=complaint_pb2.Satisfaction(csat=csat, nps=nps), request_id=request_id()
        ),
        timeout=10,
    )


async def run_schedule(stub: ComplaintServiceStub) -> complaint_service_pb2.RunScheduledWorkResponse:
    """Runs the service's scheduled work once, at its clock's time."""
    return await stub.RunScheduledWork(complaint_service_pb2.RunScheduledWorkRequest(), timeout=60)
