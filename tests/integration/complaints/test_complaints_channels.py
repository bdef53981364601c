"""Tickets that come in by email and through social networks: filed and read back with their
channel, routed by a rule on the channel, counted per channel in the figures, and, like every
channel but the shop's, refused with a retail partner."""

from datetime import timedelta

import grpc
from google.protobuf import timestamp_pb2

from chassis.clock import ManualClock
from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_service_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.integration.complaints.builders import (
    create_department,
    customer_in,
    file,
    fresh_region,
    route_region_to,
    ticket,
)
from tests.integration.complaints.conftest import department_id
from tests.support import failure, request_id

NEW_CHANNELS = (common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SOCIAL)


async def test_tickets_filed_by_email_and_social_keep_their_channel(
    complaints_stub: ComplaintServiceStub, customer: str
):
    for channel in NEW_CHANNELS:
        filed = await file(complaints_stub, customer, channel=channel)
        got = await complaints_stub.GetComplaint(complaint_service_pb2.GetComplaintRequest(name=filed.name), timeout=5)
        assert (filed.channel, got.channel) == (channel, channel)


async def test_a_rule_on_the_social_channel_routes_social_tickets_only(
    complaints_stub: ComplaintServiceStub, customer_stub: CustomerServiceStub
):
    region, social_desk = fresh_region(), department_id()
    await create_department(complaints_stub, social_desk)
    await route_region_to(complaints_stub, region, f"departments/{social_desk}", channel=common_pb2.CHANNEL_SOCIAL)
    customer = await customer_in(customer_stub, region)
    social = await file(complaints_stub, customer, channel=common_pb2.CHANNEL_SOCIAL)
    emailed = await file(complaints_stub, customer, channel=common_pb2.CHANNEL_EMAIL)
    assert (social.department, emailed.department) == (f"departments/{social_desk}", "departments/customer-care")


async def test_an_email_ticket_naming_a_retail_partner_is_invalid_argument(
    complaints_stub: ComplaintServiceStub, customer: str
):
    code, error = await failure(
        complaints_stub.CreateComplaint(
            complaint_service_pb2.CreateComplaintRequest(
                complaint=ticket(customer, channel=common_pb2.CHANNEL_EMAIL, retailer_id="retailers/texnomart"),
                request_id=request_id(),
            ),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "complaint.retailer_id" in [v.field for v in error.violations]  # type: ignore[attr-defined]


async def test_the_figures_count_email_and_social_tickets_per_channel(
    complaints_stub: ComplaintServiceStub, customer: str, complaints_clock: ManualClock
):
    # The period holds only this test's tickets: it opens after every earlier one was filed.
    start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    start.FromDatetime(complaints_clock.advance(timedelta(seconds=1)))
    for channel in (common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_SOCIAL, common_pb2.CHANNEL_SOCIAL):
        await file(complaints_stub, customer, channel=channel)
    end.FromDatetime(complaints_clock.advance(timedelta(seconds=1)))
    figures = await complaints_stub.GetComplaintKpis(
        complaint_service_pb2.GetComplaintKpisRequest(start_time=start, end_time=end), timeout=5
    )
    counted = {(r.channel, r.category): r.count for r in figures.received}
    assert counted == {
        (common_pb2.CHANNEL_EMAIL, ticket(customer).category): 1,
        (common_pb2.CHANNEL_SOCIAL, ticket(customer).category): 2,
    }
