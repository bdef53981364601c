"""The complaint figures, exact on a fixed set of tickets whose every move is timed on the service's
clock, in a department open around the clock (business time is wall time, so each figure can be
worked out by hand below)."""

from datetime import datetime, timedelta

import pytest
from google.protobuf import timestamp_pb2

from chassis.clock import ManualClock
from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.integration.complaints.builders import (
    accept,
    answer_satisfaction,
    await_customer,
    create_department,
    customer_in,
    department,
    file,
    fresh_region,
    reopen,
    resolve,
    resume,
    route_region_to,
    run_schedule,
    start,
)
from tests.integration.complaints.conftest import department_id
from tests.support import request_id

BILLING, NETWORK = complaint_pb2.COMPLAINT_CATEGORY_BILLING_DISPUTE, complaint_pb2.COMPLAINT_CATEGORY_NETWORK
APP, WEB, PHONE = common_pb2.CHANNEL_APP, common_pb2.CHANNEL_WEB, common_pb2.CHANNEL_CALL_CENTRE


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


# The data set, from T0 when all five tickets are filed (first response due after 1 h, resolution
# after 10 h):
#   A  app/billing    started +30m, resolved +2h (100 points, credited), accepted; CSAT 5, NPS 10
#   B  web/billing    started +30m, waits on the customer +1h..+5h, resolved +7h (40 points, refused:
#                     that customer has no loyalty account), accepted; CSAT 4, NPS 9
#   C  phone/network  started +2h (late), resolved +12h, reopened +13h, resolved +14h, accepted; CSAT 1, NPS 3
#   D  app/network    never started (open)
#   E  app/billing    started +10m, still in progress (open)


async def test_the_figures_of_a_period_are_exact_on_a_fixed_set_of_tickets(
    complaints_stub: ComplaintServiceStub,
    customer_stub: CustomerServiceStub,
    loyalty: LoyaltyServiceStub,
    complaints_clock: ManualClock,
):
    region, desk = fresh_region(), department_id()
    await create_department(complaints_stub, desk, department(first_response_minutes=60, resolution_minutes=600))
    await route_region_to(complaints_stub, region, f"departments/{desk}")
    with_account, without_account = await customer_in(customer_stub, region), await customer_in(customer_stub, region)
    await loyalty.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=with_account, request_id=request_id()), timeout=5
    )
    # The period holds only these tickets: it opens after every earlier test's were filed.
    t0 = complaints_clock.advance(timedelta(days=1))

    def at(offset: timedelta) -> None:
        complaints_clock.set(t0 + offset)

    a = (await file(complaints_stub, with_account, channel=APP, category=BILLING)).name
    b = (await file(complaints_stub, without_account, channel=WEB, category=BILLING)).name
    c = (await file(complaints_stub, with_account, channel=PHONE, category=NETWORK)).name
    await file(complaints_stub, with_account, channel=APP, category=NETWORK)
    e = (await file(complaints_stub, without_account, channel=APP, category=BILLING)).name
    at(timedelta(minutes=10))
    await start(complaints_stub, e)
    at(timedelta(minutes=30))
    await start(complaints_stub, a)
    await start(complaints_stub, b)
    at(timedelta(hours=1))
    await await_customer(complaints_stub, b)
    at(timedelta(hours=2))
    await resolve(complaints_stub, a, points=100)
    await accept(complaints_stub, a)
    await answer_satisfaction(complaints_stub, a, csat=5, nps=10)
    await start(complaints_stub, c)
    at(timedelta(hours=5))
    await resume(complaints_stub, b)
    at(timedelta(hours=7))
    await resolve(complaints_stub, b, points=40)
    await accept(complaints_stub, b)
    await answer_satisfaction(complaints_stub, b, csat=4, nps=9)
    at(timedelta(hours=12))
    await resolve(complaints_stub, c)
    at(timedelta(hours=13))
    await reopen(complaints_stub, c)
    at(timedelta(hours=14))
    await resolve(complaints_stub, c)
    await accept(complaints_stub, c)
    await answer_satisfaction(complaints_stub, c, csat=1, nps=3)
    await run_schedule(complaints_stub)  # sends the two compensations: one credited, one refused

    figures = await complaints_stub.GetComplaintKpis(
        complaint_service_pb2.GetComplaintKpisRequest(
            start_time=_timestamp(t0), end_time=_timestamp(t0 + timedelta(minutes=1))
        ),
        timeout=5,
    )

    assert {(r.channel, r.category): r.count for r in figures.received} == {
        (APP, BILLING): 2,
        (WEB, BILLING): 1,
        (PHONE, NETWORK): 1,
        (APP, NETWORK): 1,
    }
    assert figures.resolved == 3
    # Responded: A, B, E within the hour, C after two.
    assert figures.first_response_compliance == pytest.approx(3 / 4)
    # Business time to resolution: A 2 h, B 1 h + 2 h (the wait not counted), C 12 h + 1 h (the
    # time resolved before the reopening not counted); C is over its 10 h.
    assert figures.resolution_compliance == pytest.approx(2 / 3)
    assert figures.median_resolution_time.ToTimedelta() == timedelta(hours=3)
    # percentile_cont: 3 h + 0.8 of the way to 13 h.
    assert figures.p90_resolution_time.ToTimedelta() == timedelta(hours=11)
    # Only A was resolved without a wait or a reopening; only C was reopened.
    assert figures.first_contact_resolution_rate == pytest.approx(1 / 3)
    assert figures.reopen_rate == pytest.approx(1 / 3)
    assert [(d.department, d.open_complaints) for d in figures.backlog if d.department == f"departments/{desk}"] == [
        (f"departments/{desk}", 2)
    ]
    assert figures.satisfaction_answers == 3
    assert figures.csat_average == pytest.approx(10 / 3)
    # Promoters A and B, detractor C.
    assert figures.nps == pytest.approx(100 * (2 - 1) / 3)
    assert figures.compensation_points_granted == 100
