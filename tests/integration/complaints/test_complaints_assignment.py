"""Who works a ticket, against the database: round robin shares a department's tickets in turn among
its available agents, least busy hands each to the agent holding fewest open tickets, a reassignment
moves the load and is kept in the history, and a VIP customer (from the customer service's real
`SegmentsChanged` events, read from its feed) goes to the senior queue one priority higher."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.type import date_pb2, money_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import SYSTEM_CLOCK, ManualClock
from chassis.database import Database
from chassis.event_consumer import EventConsumer
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, departments_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1 import billing_pb2
from crm.customer.v1.billing_pb2_grpc import BillingServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.complaints import customer_events
from services.customer.segments.evaluator import rank_vip
from tests.event_support import feed_end
from tests.integration.complaints.builders import (
    create_agent,
    create_department,
    customer_in,
    department,
    file,
    fresh_region,
    reject,
    route_region_to,
)
from tests.integration.complaints.conftest import department_id
from tests.support import request_id

LEAST_BUSY = departments_pb2.ASSIGNMENT_POLICY_LEAST_BUSY
ApplyCustomerEvents = Callable[[], Awaitable[int]]


async def _desk(
    stub: ComplaintServiceStub,
    customers: CustomerServiceStub,
    agents: dict[str, bool],
    policy: departments_pb2.AssignmentPolicy = departments_pb2.ASSIGNMENT_POLICY_ROUND_ROBIN,
) -> tuple[str, str]:
    """A department of `agents` (id -> available) that a region of its own is routed to; returns the
    department's name and a customer living in that region."""
    region, desk = fresh_region(), department_id()
    await create_department(stub, desk, department(policy=policy))
    for agent_id, available in agents.items():
        await create_agent(stub, f"departments/{desk}", agent_id, available=available)
    await route_region_to(stub, region, f"departments/{desk}")
    return f"departments/{desk}", await customer_in(customers, region)


async def _loads(engine: AsyncEngine, desk: str) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT id, open_complaints FROM agents WHERE department_id = :d"),
            {"d": desk.removeprefix("departments/")},
        )
        return {row.id: int(row.open_complaints) for row in rows}


async def _file_one_a_second(
    stub: ComplaintServiceStub, clock: ManualClock, customer: str, count: int
) -> list[complaint_pb2.Complaint]:
    filed = []
    for _ in range(count):
        clock.advance(timedelta(seconds=1))
        filed.append(await file(stub, customer))
    return filed


def _agent_ids(tickets: list[complaint_pb2.Complaint]) -> list[str]:
    return [t.agent.rpartition("/")[2] for t in tickets]


async def test_round_robin_hands_tickets_in_turn_to_the_available_agents(
    complaints_stub: ComplaintServiceStub,
    customer_stub: CustomerServiceStub,
    complaints_clock: ManualClock,
    complaints_engine: AsyncEngine,
):
    desk, customer = await _desk(
        complaints_stub, customer_stub, {"aziza": True, "bekzod": True, "kamola": True, "off-duty": False}
    )
    filed = await _file_one_a_second(complaints_stub, complaints_clock, customer, 6)
    assert {t.department for t in filed} == {desk}
    assert _agent_ids(filed) == ["aziza", "bekzod", "kamola", "aziza", "bekzod", "kamola"]
    assert await _loads(complaints_engine, desk) == {"aziza": 2, "bekzod": 2, "kamola": 2, "off-duty": 0}


async def test_least_busy_hands_a_ticket_to_the_agent_holding_fewest_open_tickets(
    complaints_stub: ComplaintServiceStub,
    customer_stub: CustomerServiceStub,
    complaints_clock: ManualClock,
    complaints_engine: AsyncEngine,
):
    desk, customer = await _desk(complaints_stub, customer_stub, {"aziza": True, "bekzod": True}, LEAST_BUSY)
    first = await _file_one_a_second(complaints_stub, complaints_clock, customer, 4)
    assert _agent_ids(first) == ["aziza", "bekzod", "aziza", "bekzod"]
    # Aziza's tickets end: she holds none, Bekzod two, although she was handed one last but one.
    for ticket in (first[0], first[2]):
        await reject(complaints_stub, ticket.name)
    assert await _loads(complaints_engine, desk) == {"aziza": 0, "bekzod": 2}
    later = await _file_one_a_second(complaints_stub, complaints_clock, customer, 3)
    assert _agent_ids(later) == ["aziza", "aziza", "bekzod"]
    assert await _loads(complaints_engine, desk) == {"aziza": 2, "bekzod": 3}


async def test_no_available_agent_leaves_the_ticket_unassigned_in_its_department(
    complaints_stub: ComplaintServiceStub, customer_stub: CustomerServiceStub, complaints_engine: AsyncEngine
):
    desk, customer = await _desk(complaints_stub, customer_stub, {"off-duty": False})
    filed = await file(complaints_stub, customer)
    assert (filed.department, filed.agent) == (desk, "")
    assert await _loads(complaints_engine, desk) == {"off-duty": 0}


async def test_a_reassignment_moves_the_load_and_is_kept_in_the_history(
    complaints_stub: ComplaintServiceStub, customer_stub: CustomerServiceStub, complaints_engine: AsyncEngine
):
    desk, customer = await _desk(complaints_stub, customer_stub, {"aziza": True, "bekzod": True})
    filed = await file(complaints_stub, customer)
    assert filed.agent == f"{desk}/agents/aziza"
    moved = await complaints_stub.AssignComplaint(
        complaint_service_pb2.AssignComplaintRequest(
            name=filed.name, agent=f"{desk}/agents/bekzod", reason="speaks Karakalpak", request_id=request_id()
        ),
        timeout=5,
    )
    assert moved.agent == f"{desk}/agents/bekzod"
    assert await _loads(complaints_engine, desk) == {"aziza": 0, "bekzod": 1}
    history = await complaints_stub.ListHistory(complaint_service_pb2.ListHistoryRequest(parent=filed.name), timeout=5)
    last = history.entries[-1]
    assert (last.kind, last.reason, last.detail) == (
        complaint_pb2.HISTORY_KIND_ASSIGNMENT,
        "speaks Karakalpak",
        f"{desk}/agents/bekzod",
    )


# --- the VIP queue, from the customer service's feed ----------------------------------------------


@pytest.fixture
async def apply_customer_events(
    customer_channel: grpc.aio.Channel, customer_engine: AsyncEngine, complaints_database: Database
) -> AsyncIterator[ApplyCustomerEvents]:
    """`await apply_customer_events()` applies every customer event committed so far to the
    complaints database, as the service's own consumer does."""
    consumer = EventConsumer(
        name=customer_events.CONSUMER_NAME,
        producer=customer_events.PRODUCER_NAME,
        feed=customer_channel,
        database=complaints_database,
        handler=customer_events.customer_event_handler(),
        event_types=customer_events.EVENT_TYPES,
    )

    async def catch_up() -> int:
        await feed_end(customer_engine)
        return await consumer.catch_up(timeout_seconds=60)

    yield catch_up


async def _made_vip(billing: BillingServiceStub, customer_database: Database, customer: str) -> None:
    """Bills `customer` as much as the largest bill any test of the shared customer service records
    (more would push the others' VIPs out of the top share) and ranks spenders: the customer service
    puts them in value-vip and announces it."""
    today = datetime.now(UTC).date()
    await billing.RecordInvoice(
        billing_pb2.RecordInvoiceRequest(
            parent=customer,
            invoice=billing_pb2.Invoice(
                invoice_id=f"VIP-{uuid.uuid4().hex[:8]}",
                amount=money_pb2.Money(currency_code="UZS", units=900_000_000),
                issue_date=date_pb2.Date(year=today.year, month=today.month, day=today.day),
                due_date=date_pb2.Date(year=today.year, month=today.month, day=today.day),
            ),
            request_id=request_id(),
        ),
        timeout=5,
    )
    customer_id = customer.removeprefix("customers/")
    async with asyncio.timeout(15):
        while True:
            async with customer_database.transaction() as session:
                scored = await session.scalar(
                    text("SELECT count(*) FROM customer_scores WHERE customer_id = :c AND average_monthly_spend > 0"),
                    {"c": customer_id},
                )
            if scored:
                break
            await asyncio.sleep(0.05)
    await rank_vip(customer_database, SYSTEM_CLOCK)


async def test_a_vip_customer_from_the_customer_feed_goes_to_the_senior_queue_one_priority_higher(
    complaints_stub: ComplaintServiceStub,
    customer_stub: CustomerServiceStub,
    customer_channel: grpc.aio.Channel,
    customer_database: Database,
    apply_customer_events: ApplyCustomerEvents,
):
    region, desk = fresh_region(), department_id()
    await create_department(complaints_stub, desk)
    await create_agent(complaints_stub, f"departments/{desk}", "aziza")
    await create_agent(complaints_stub, f"departments/{desk}", "senior-olim", senior=True)
    await route_region_to(complaints_stub, region, f"departments/{desk}")
    vip, regular = await customer_in(customer_stub, region), await customer_in(customer_stub, region)
    await _made_vip(BillingServiceStub(customer_channel), customer_database, vip)
    await apply_customer_events()

    vips = await file(complaints_stub, vip)
    regulars = await file(complaints_stub, regular)
    assert (vips.queue, vips.priority, vips.agent) == (
        complaint_pb2.QUEUE_SENIOR,
        complaint_pb2.PRIORITY_HIGH,
        f"departments/{desk}/agents/senior-olim",
    )
    assert (regulars.queue, regulars.priority, regulars.agent) == (
        complaint_pb2.QUEUE_STANDARD,
        complaint_pb2.PRIORITY_MEDIUM,
        f"departments/{desk}/agents/aziza",
    )
