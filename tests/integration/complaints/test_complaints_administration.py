"""Departments, agents and routing rules through the real complaints service and PostgreSQL: created
and read back whole, idempotent by request id, changed under their etag, and bad input refused with
every bad field named and nothing written; the most specific matching rule routes a ticket."""

import uuid

import grpc
from google.type import date_pb2, timeofday_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.errors import DomainError
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, departments_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from tests.integration.complaints.builders import (
    create_agent,
    create_department,
    customer_in,
    department,
    file,
    fresh_region,
    route_region_to,
)
from tests.integration.complaints.conftest import department_id
from tests.support import failure, request_id


async def _count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


def _fields(error: DomainError) -> list[str]:
    return sorted(v.field for v in error.violations)  # type: ignore[attr-defined]


def _tashkent_office() -> departments_pb2.Department:
    """Weekdays 09:00-18:00 in Tashkent, Uzbek public holidays and one company day off, least busy."""
    return departments_pb2.Department(
        display_name="Tarmoq sifati — Network quality",
        calendar=departments_pb2.BusinessCalendar(
            time_zone="Asia/Tashkent",
            country_code="UZ",
            opening_hours=[
                departments_pb2.OpeningHours(
                    day=day,  # type: ignore[arg-type]
                    open_time=timeofday_pb2.TimeOfDay(hours=9),
                    close_time=timeofday_pb2.TimeOfDay(hours=18),
                )
                for day in range(1, 6)
            ],
            company_holidays=[date_pb2.Date(year=2030, month=9, day=2)],
        ),
        sla_targets=department().sla_targets,
        paused_states=[complaint_pb2.COMPLAINT_STATE_PENDING],
        warning_share=0.7,
        assignment_policy=departments_pb2.ASSIGNMENT_POLICY_LEAST_BUSY,
    )


# --- departments ------------------------------------------------------------------------------------


async def test_a_department_is_created_and_read_back_whole(complaints_stub: ComplaintServiceStub):
    desk = department_id()
    created = await create_department(complaints_stub, desk, _tashkent_office())
    got = await complaints_stub.GetDepartment(
        complaint_service_pb2.GetDepartmentRequest(name=f"departments/{desk}"), timeout=5
    )
    assert got == created
    assert (got.name, got.display_name) == (f"departments/{desk}", "Tarmoq sifati — Network quality")
    assert got.etag
    calendar = got.calendar
    assert (calendar.time_zone, calendar.country_code, list(calendar.company_holidays)) == (
        "Asia/Tashkent",
        "UZ",
        [date_pb2.Date(year=2030, month=9, day=2)],
    )
    assert [(h.day, h.open_time.hours, h.close_time.hours) for h in calendar.opening_hours] == [
        (day, 9, 18) for day in range(1, 6)
    ]
    assert [(t.priority, t.first_response_minutes, t.resolution_minutes) for t in got.sla_targets] == [
        (priority, 60, 600)
        for priority in (
            complaint_pb2.PRIORITY_LOW,
            complaint_pb2.PRIORITY_MEDIUM,
            complaint_pb2.PRIORITY_HIGH,
            complaint_pb2.PRIORITY_URGENT,
        )
    ]
    assert (list(got.paused_states), got.warning_share, got.assignment_policy) == (
        [complaint_pb2.COMPLAINT_STATE_PENDING],
        0.7,
        departments_pb2.ASSIGNMENT_POLICY_LEAST_BUSY,
    )


async def test_a_department_created_again_with_its_request_id_is_answered_once_and_another_request_is_already_exists(
    complaints_stub: ComplaintServiceStub, complaints_engine: AsyncEngine
):
    request = complaint_service_pb2.CreateDepartmentRequest(
        department=department(), department_id=department_id(), request_id=request_id()
    )
    first = await complaints_stub.CreateDepartment(request, timeout=5)
    before = await _count(complaints_engine, "departments")
    assert await complaints_stub.CreateDepartment(request, timeout=5) == first
    request.request_id = request_id()
    code, error = await failure(complaints_stub.CreateDepartment(request, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "DEPARTMENT_EXISTS")
    assert await _count(complaints_engine, "departments") == before


async def test_a_bad_department_names_every_bad_field_and_writes_nothing(
    complaints_stub: ComplaintServiceStub, complaints_engine: AsyncEngine
):
    bad = department()
    bad.calendar.time_zone = "Mars/Olympus_Mons"
    bad.calendar.country_code = "XX"
    del bad.sla_targets[1:]
    bad.paused_states.append(complaint_pb2.COMPLAINT_STATE_CLOSED)
    bad.warning_share = 1.5
    desk = department_id()
    before = await _count(complaints_engine, "departments")
    code, error = await failure(
        complaints_stub.CreateDepartment(
            complaint_service_pb2.CreateDepartmentRequest(department=bad, department_id=desk, request_id=request_id()),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(_fields(error)) == {
        "department.calendar.time_zone",
        "department.calendar.country_code",
        "department.sla_targets",
        "department.paused_states",
        "department.warning_share",
    }
    code, error = await failure(
        complaints_stub.CreateDepartment(
            complaint_service_pb2.CreateDepartmentRequest(
                department=department(), department_id="Billing Desk", request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert (code, _fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["department_id"])
    assert await _count(complaints_engine, "departments") == before
    code, _ = await failure(
        complaints_stub.GetDepartment(complaint_service_pb2.GetDepartmentRequest(name=f"departments/{desk}"), timeout=5)
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_a_department_changes_under_its_etag_and_a_stale_etag_is_aborted(complaints_stub: ComplaintServiceStub):
    desk = department_id()
    created = await create_department(complaints_stub, desk)
    change = _tashkent_office()
    change.name, change.etag = created.name, created.etag
    updated = await complaints_stub.UpdateDepartment(
        complaint_service_pb2.UpdateDepartmentRequest(department=change, request_id=request_id()), timeout=5
    )
    assert (updated.display_name, updated.calendar.time_zone, updated.assignment_policy) == (
        change.display_name,
        "Asia/Tashkent",
        departments_pb2.ASSIGNMENT_POLICY_LEAST_BUSY,
    )
    assert updated.etag != created.etag
    code, error = await failure(
        complaints_stub.UpdateDepartment(
            complaint_service_pb2.UpdateDepartmentRequest(department=change, request_id=request_id()), timeout=5
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    got = await complaints_stub.GetDepartment(complaint_service_pb2.GetDepartmentRequest(name=created.name), timeout=5)
    assert got == updated


async def test_updating_a_department_that_does_not_exist_is_not_found(complaints_stub: ComplaintServiceStub):
    missing = department()
    missing.name = f"departments/{department_id()}"
    code, _ = await failure(
        complaints_stub.UpdateDepartment(
            complaint_service_pb2.UpdateDepartmentRequest(department=missing, request_id=request_id()), timeout=5
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


# --- agents -----------------------------------------------------------------------------------------


async def test_an_agent_made_unavailable_is_handed_no_more_tickets(
    complaints_stub: ComplaintServiceStub, customer_stub: CustomerServiceStub
):
    region, desk = fresh_region(), department_id()
    await create_department(complaints_stub, desk)
    created = await create_agent(complaints_stub, f"departments/{desk}", "dilnoza")
    assert (created.name, created.available, created.senior, created.open_complaints) == (
        f"departments/{desk}/agents/dilnoza",
        True,
        False,
        0,
    )
    await route_region_to(complaints_stub, region, f"departments/{desk}")
    customer = await customer_in(customer_stub, region)
    assert (await file(complaints_stub, customer)).agent == created.name
    away = await complaints_stub.UpdateAgent(
        complaint_service_pb2.UpdateAgentRequest(
            agent=departments_pb2.Agent(name=created.name, display_name="Dilnoza (on leave)", available=False),
            request_id=request_id(),
        ),
        timeout=5,
    )
    assert (away.display_name, away.available, away.open_complaints) == ("Dilnoza (on leave)", False, 1)
    assert (await file(complaints_stub, customer)).agent == ""


async def test_bad_agents_are_refused_naming_the_field_and_write_nothing(
    complaints_stub: ComplaintServiceStub, complaints_engine: AsyncEngine
):
    desk = department_id()
    await create_department(complaints_stub, desk)
    await create_agent(complaints_stub, f"departments/{desk}", "olim")
    before = await _count(complaints_engine, "agents")

    async def create(parent: str, agent_id: str, display_name: str) -> tuple[grpc.StatusCode, DomainError]:
        return await failure(
            complaints_stub.CreateAgent(
                complaint_service_pb2.CreateAgentRequest(
                    parent=parent,
                    agent=departments_pb2.Agent(display_name=display_name, available=True),
                    agent_id=agent_id,
                    request_id=request_id(),
                ),
                timeout=5,
            )
        )

    code, error = await create(f"departments/{desk}", "Olim Karimov", " ")
    assert (code, _fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["agent.display_name", "agent_id"])
    code, error = await create(f"departments/{department_id()}", "olim", "Olim")
    assert (code, error.reason) == (grpc.StatusCode.NOT_FOUND, "DEPARTMENT_NOT_FOUND")
    code, error = await create(f"departments/{desk}", "olim", "Olim again")
    assert (code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "AGENT_EXISTS")
    code, _ = await failure(
        complaints_stub.UpdateAgent(
            complaint_service_pb2.UpdateAgentRequest(
                agent=departments_pb2.Agent(name=f"departments/{desk}/agents/nobody", display_name="Nobody"),
                request_id=request_id(),
            ),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert await _count(complaints_engine, "agents") == before


# --- routing rules ----------------------------------------------------------------------------------


async def test_routing_rules_are_listed_a_page_at_a_time_and_deleted(complaints_stub: ComplaintServiceStub):
    desk = department_id()
    await create_department(complaints_stub, desk)
    region = fresh_region()
    created = [(await route_region_to(complaints_stub, region, f"departments/{desk}")).name for _ in range(3)]

    async def listed() -> list[str]:
        names, token = [], ""
        while True:
            page = await complaints_stub.ListRoutingRules(
                complaint_service_pb2.ListRoutingRulesRequest(page_size=2, page_token=token), timeout=5
            )
            assert len(page.routing_rules) <= 2
            names.extend(rule.name for rule in page.routing_rules)
            token = page.next_page_token
            if not token:
                return names

    names = await listed()
    assert names == sorted(names) and set(created) <= set(names)
    await complaints_stub.DeleteRoutingRule(complaint_service_pb2.DeleteRoutingRuleRequest(name=created[0]), timeout=5)
    assert created[0] not in await listed()
    code, _ = await failure(
        complaints_stub.DeleteRoutingRule(complaint_service_pb2.DeleteRoutingRuleRequest(name=created[0]), timeout=5)
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_bad_routing_rules_are_refused_naming_the_field_and_write_nothing(
    complaints_stub: ComplaintServiceStub, complaints_engine: AsyncEngine
):
    desk = department_id()
    await create_department(complaints_stub, desk)
    taken = await route_region_to(complaints_stub, fresh_region(), f"departments/{desk}")
    before = await _count(complaints_engine, "routing_rules")

    async def create(rule_id: str, **fields: object) -> tuple[grpc.StatusCode, DomainError]:
        values: dict[str, object] = {"department": f"departments/{desk}", "priority": complaint_pb2.PRIORITY_HIGH}
        values.update(fields)
        return await failure(
            complaints_stub.CreateRoutingRule(
                complaint_service_pb2.CreateRoutingRuleRequest(
                    routing_rule=departments_pb2.RoutingRule(**values),  # type: ignore[arg-type]
                    routing_rule_id=rule_id,
                    request_id=request_id(),
                ),
                timeout=5,
            )
        )

    fresh = f"rule-{uuid.uuid4().hex[:12]}"
    code, error = await create(fresh, category=99, channel=99, department="billing")
    assert (code, _fields(error)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["routing_rule.category", "routing_rule.channel", "routing_rule.department"],
    )
    code, error = await create(fresh, priority=complaint_pb2.PRIORITY_UNSPECIFIED)
    assert (code, _fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["routing_rule.priority"])
    code, error = await create("Rule One")
    assert (code, _fields(error)) == (grpc.StatusCode.INVALID_ARGUMENT, ["routing_rule_id"])
    code, _ = await create(fresh, department=f"departments/{department_id()}")
    assert code == grpc.StatusCode.NOT_FOUND
    code, error = await create(taken.name.removeprefix("routingRules/"))
    assert (code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ROUTING_RULE_EXISTS")
    assert await _count(complaints_engine, "routing_rules") == before


async def test_the_most_specific_matching_rule_routes_a_ticket(
    complaints_stub: ComplaintServiceStub, customer_stub: CustomerServiceStub
):
    region, general, network = fresh_region(), department_id(), department_id()
    for desk in (general, network):
        await create_department(complaints_stub, desk)
    await route_region_to(complaints_stub, region, f"departments/{general}")
    specific = await route_region_to(
        complaints_stub,
        region,
        f"departments/{network}",
        category=complaint_pb2.COMPLAINT_CATEGORY_NETWORK,
        priority=complaint_pb2.PRIORITY_URGENT,
    )
    customer = await customer_in(customer_stub, region)
    billing = await file(complaints_stub, customer)
    coverage = await file(complaints_stub, customer, category=complaint_pb2.COMPLAINT_CATEGORY_NETWORK)
    assert (billing.department, billing.priority) == (f"departments/{general}", complaint_pb2.PRIORITY_MEDIUM)
    assert (coverage.department, coverage.priority) == (f"departments/{network}", complaint_pb2.PRIORITY_URGENT)
    history = await complaints_stub.ListHistory(
        complaint_service_pb2.ListHistoryRequest(parent=coverage.name), timeout=5
    )
    assert history.entries[0].detail == f"routed by {specific.name}"
    await complaints_stub.DeleteRoutingRule(
        complaint_service_pb2.DeleteRoutingRuleRequest(name=specific.name), timeout=5
    )
    after = await file(complaints_stub, customer, category=complaint_pb2.COMPLAINT_CATEGORY_NETWORK)
    assert after.department == f"departments/{general}"
