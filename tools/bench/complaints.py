"""Complaint filing and working throughput, directly and through the gateway, and the breach scan at a
million open tickets.

Sets up a temporary embedded PostgreSQL and starts the customer, loyalty and complaints services and
the gateway as their own processes on 127.0.0.1 (`tools.bench.service_processes`,
`tools.bench.measured_gateway`), the complaints service's schedule set far apart so that it does not
run during the phases. Creates customers in the customer service and agents in the default department
(every ticket filed is assigned to one, as in operation), then at several concurrencies files tickets
with CreateComplaint and moves each ticket filed once with StartComplaint: directly (as an agent, with
the caller metadata the gateway would forward) and through the gateway as an agent with a signed token
over TLS. Each phase is held against the echo baselines measured in the same run
(`tools.bench.call_phases`), and is bounded in calls and in time.

Then the breach scan: a million open tickets are written straight into the complaints database by one
INSERT over generate_series (copies of a ticket filed through the API, a few hundred of them past
their first-response deadline and due to be checked, the rest due over the next month), the table is
analysed, and the query the scheduled job runs to find the tickets due is taken from the store as it
is sent to PostgreSQL and explained: it must be served by an index, with no sequential scan of the
complaints table. One scheduled run (RunScheduledWork, on the service itself) is timed over them, and
a second with nothing left due. Nothing is asserted. Prints the tables and writes them as JSON to
`.data/bench/complaints.json`.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
from sqlalchemy import event

from chassis.caller import Caller
from chassis.database import Database, create_engine
from chassis.settings import DatabaseSettings
from crm.common.v1 import common_pb2
from crm.complaints.v1 import complaint_pb2, complaint_service_pb2, departments_pb2
from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceStub
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from services.complaints import scheduled, store
from services.complaints.app import COMPLAINTS
from services.complaints.departments import DEFAULT_DEPARTMENT
from services.customer.app import CUSTOMER
from services.loyalty.app import LOYALTY
from tests.processes import ServiceProcess
from tests.support import create_request, person, unique_mobile
from tools.bench.baselines import measure_baselines
from tools.bench.call_phases import DIRECT, GATEWAY, HEADER, CallPhase, CallPhases, measure_phase
from tools.bench.calls import CALL_TIMEOUT_SECONDS, FULL_LIMITS, QUICK_LIMITS, PhaseLimits, drive
from tools.bench.idle_memory import IdleMemory, idle_memory
from tools.bench.idle_memory import report as idle_memory_report
from tools.bench.measured_gateway import start_gateway
from tools.bench.service_processes import QUIET, BenchService, start_service
from tools.bench.sizes import chosen_sizes
from tools.postgres import open_cluster

if TYPE_CHECKING:
    # mypy-protobuf's types of the stubs on an asyncio channel; they exist for type checkers only.
    from crm.complaints.v1.complaint_service_pb2_grpc import ComplaintServiceAsyncStub
    from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceAsyncStub

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS = REPOSITORY / ".data" / "bench" / "complaints.json"
COMPLAINTS_SERVICE = "crm.complaints.v1.ComplaintService"
CONCURRENCIES = (1, 8, 32)
SETUP_SECONDS = 300.0
INSERT_TIMEOUT_SECONDS = 1800.0
"""Longest the INSERT of the open tickets (and their indexes) may take."""
SCHEDULED_RUN_TIMEOUT_SECONDS = 600.0
CREATE, START = "CreateComplaint", "StartComplaint"
AGENT = Caller(subject="complaints-bench", kind="employee", roles=("agent",))
"""Who files and works the tickets: an agent, as the gateway forwards one (direct) or as its token says."""
ADMIN = Caller(subject="complaints-bench-admin", kind="employee", roles=("admin",))
"""Who creates the department's agents and runs the scheduled work."""
SCHEDULE_INTERVAL_SECONDS = "86400"
"""The service's own schedule, set far apart: only the timed run scans the open tickets."""
SCANS = ("next_sla_check", "pending_deadline", "silence_deadline")
"""The columns the scheduled job finds due tickets by (`store.lock_due`); the first is the breach scan."""


@dataclass(frozen=True)
class ComplaintsSizes:
    """How big a run is."""

    customers: int
    """Customers the tickets are filed for, picked at random per ticket."""
    agents: int
    """Agents of the default department the tickets are assigned to."""
    concurrency: list[int]
    """Calls in flight, one phase each."""
    requests: int
    """Most calls per phase."""
    seconds: float
    """Longest phase."""
    open_tickets: int
    """Open tickets written into the database for the breach scan."""
    due_tickets: int
    """How many of those are past their first-response deadline and due to be checked."""


FULL = ComplaintsSizes(200, 8, list(CONCURRENCIES), FULL_LIMITS.max_requests, FULL_LIMITS.max_seconds, 1_000_000, 500)
QUICK = ComplaintsSizes(20, 8, list(CONCURRENCIES), QUICK_LIMITS.max_requests, QUICK_LIMITS.max_seconds, 20_000, 50)


# --- filing and working tickets ------------------------------------------------------------------


async def create_customers(customers: "CustomerServiceAsyncStub", count: int) -> list[str]:
    """Creates `count` customers in the customer service; their names."""
    names: list[str] = []

    async def create() -> None:
        created = await customers.CreateCustomer(
            create_request(person(phone=unique_mobile("UZ"))), timeout=CALL_TIMEOUT_SECONDS
        )
        names.append(created.name)

    driven = await drive(create, concurrency=8, limits=PhaseLimits(count, SETUP_SECONDS))
    if len(names) < count:
        raise RuntimeError(f"created {len(names)} of {count} customers; failures: {dict(driven.errors)}")
    return names


async def create_agents(complaints: "ComplaintServiceAsyncStub", count: int) -> None:
    """Adds `count` available agents to the default department."""
    for number in range(1, count + 1):
        await complaints.CreateAgent(
            complaint_service_pb2.CreateAgentRequest(
                parent=f"departments/{DEFAULT_DEPARTMENT}",
                agent=departments_pb2.Agent(display_name=f"Bench agent {number}", available=True),
                agent_id=f"bench-agent-{number}",
                request_id=str(uuid.uuid4()),
            ),
            timeout=CALL_TIMEOUT_SECONDS,
            metadata=ADMIN.to_metadata(),
        )


def new_complaint(customer: str) -> complaint_service_pb2.CreateComplaintRequest:
    """A billing complaint of `customer` filed in the app, with a fresh request id."""
    complaint = complaint_pb2.Complaint(
        customer=customer,
        type=complaint_pb2.COMPLAINT_TYPE_COMPLAINT,
        category=complaint_pb2.COMPLAINT_CATEGORY_BILLING_DISPUTE,
        description="Hisobimdan ikki marta pul yechildi",
        channel=common_pb2.CHANNEL_APP,
    )
    return complaint_service_pb2.CreateComplaintRequest(complaint=complaint, request_id=str(uuid.uuid4()))


def filing_call(
    stub: "ComplaintServiceAsyncStub",
    pick_customer: Callable[[], str],
    filed: list[str],
    metadata: tuple[tuple[str, str], ...],
) -> Callable[[], Awaitable[None]]:
    """A factory of CreateComplaint calls, each ticket's name kept in `filed`."""

    async def call() -> None:
        complaint = await stub.CreateComplaint(
            new_complaint(pick_customer()), timeout=CALL_TIMEOUT_SECONDS, metadata=metadata
        )
        filed.append(complaint.name)

    return call


def starting_call(
    stub: "ComplaintServiceAsyncStub", filed: list[str], metadata: tuple[tuple[str, str], ...]
) -> Callable[[], Awaitable[complaint_pb2.Complaint]]:
    """A factory of StartComplaint calls, each on a ticket of `filed` not started yet."""

    def call() -> Awaitable[complaint_pb2.Complaint]:
        request = complaint_service_pb2.StartComplaintRequest(
            name=filed.pop(), reason="taken up", request_id=str(uuid.uuid4())
        )
        return stub.StartComplaint(request, timeout=CALL_TIMEOUT_SECONDS, metadata=metadata)

    return call


async def measure_path(
    path: str,
    channel: grpc.aio.Channel,
    customers: list[str],
    concurrencies: list[int],
    limits: PhaseLimits,
    metadata: tuple[tuple[str, str], ...] = (),
) -> list[CallPhase]:
    """At each concurrency, tickets filed, then each of them started once, over one channel; closes it."""
    phases: list[CallPhase] = []
    rng = random.Random(12)
    async with channel:
        # Connected first, as in the echo phases: no phase pays for the connection.
        await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_SECONDS)
        stub = ComplaintServiceStub(channel)
        for concurrency in concurrencies:
            filed: list[str] = []
            filing = filing_call(stub, lambda: rng.choice(customers), filed, metadata)
            phases.append(await measure_phase(path, CREATE, filing, concurrency, limits))
            # One transition per ticket: the phase ends when every ticket filed was started.
            each_once = PhaseLimits(min(limits.max_requests, len(filed)), limits.max_seconds)
            starting = starting_call(stub, filed, metadata)
            phases.append(await measure_phase(path, START, starting, concurrency, each_once))
    return phases


# --- the breach scan -----------------------------------------------------------------------------

# Copies of one ticket, each with its own id, customer, filing time and next SLA check: the first
# `due` past their first-response deadline and checked a minute ago, the rest checked over the next
# month. $1 the ticket copied, $2 how many, $3 how many are due.
_GENERATED_COLUMNS = {
    "id": "('00000000-0000-4000-b000-' || lpad(n::text, 12, '0'))::uuid",
    "customer_id": "('00000000-0000-4000-c000-' || lpad((n / 10)::text, 12, '0'))::uuid",
    "create_time": "t.create_time - n * interval '1 second'",
    "update_time": "t.create_time - n * interval '1 second'",
    "first_response_due": "CASE WHEN n <= $3 THEN now() - interval '1 hour' "
    "ELSE now() + (1 + n % 43200) * interval '1 minute' END",
    "next_sla_check": "CASE WHEN n <= $3 THEN now() - interval '1 minute' "
    "ELSE now() + (1 + n % 43200) * interval '1 minute' END",
}
_COLUMNS = (
    "SELECT column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = 'complaints' ORDER BY ordinal_position"
)


def open_tickets_insert(columns: list[str]) -> str:
    """The one INSERT ... SELECT over generate_series writing the open tickets, every column of the
    table copied from the ticket but those generated."""
    missing = sorted(set(_GENERATED_COLUMNS) - set(columns))
    if missing:
        raise RuntimeError(f"the complaints table has no column {missing[0]!r} any more; update the benchmark")
    values = [_GENERATED_COLUMNS.get(column, f"t.{column}") for column in columns]
    return (
        f"INSERT INTO complaints ({', '.join(columns)}) SELECT {', '.join(values)} "
        "FROM complaints t CROSS JOIN generate_series(1, $2) AS n WHERE t.id = $1"
    )


async def write_open_tickets(database_url: str, template: uuid.UUID, count: int, due: int) -> tuple[float, float]:
    """Writes `count` open tickets copied from `template`, `due` of them due; analyses the table.
    Returns the seconds the INSERT and the ANALYZE took."""
    connection = await asyncpg.connect(_asyncpg_url(database_url), timeout=CALL_TIMEOUT_SECONDS)
    try:
        columns = [row["column_name"] for row in await connection.fetch(_COLUMNS)]
        started = time.perf_counter()
        await connection.execute(open_tickets_insert(columns), template, count, due, timeout=INSERT_TIMEOUT_SECONDS)
        inserted = time.perf_counter()
        await connection.execute("ANALYZE complaints", timeout=INSERT_TIMEOUT_SECONDS)
        return inserted - started, time.perf_counter() - inserted
    finally:
        await connection.close()


@dataclass(frozen=True)
class ScanPlan:
    """The plan of one of the scheduled job's scans of due tickets."""

    column: str
    """What it scans by: next_sla_check (the breach scan), pending_deadline or silence_deadline."""
    statement: str
    """The statement exactly as the store sends it to PostgreSQL."""
    plan: str
    """EXPLAIN (ANALYZE, BUFFERS) of it, in text."""
    indexes: list[str]
    """The indexes the plan reads the complaints table through."""
    sequential: bool
    """Whether the plan scans the complaints table sequentially."""

    @property
    def served_by_index(self) -> bool:
        """Read through an index and never sequentially."""
        return bool(self.indexes) and not self.sequential


async def explain_scans(database_url: str) -> list[ScanPlan]:
    """Explains each scan of `store.lock_due` as the store sends it: the statement and its parameters are
    caught on their way to the driver while the store runs it, then explained on the same server."""
    database = Database(create_engine(DatabaseSettings(url=database_url), application_name="complaints-bench"))
    sent: list[tuple[str, object]] = []

    def catch(_connection: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        sent.append((statement, parameters))

    event.listen(database.engine.sync_engine, "before_cursor_execute", catch)
    plans: list[ScanPlan] = []
    try:
        for column in SCANS:
            sent.clear()
            async with database.transaction() as session:
                await store.lock_due(session, column, datetime.now(UTC), scheduled.BATCH)
            scans = [(statement, parameters) for statement, parameters in sent if "FROM complaints" in statement]
            if len(scans) != 1:
                raise RuntimeError(f"expected the one statement of lock_due({column!r}), caught {len(scans)}")
            statement, parameters = scans[0]
            # The asyncpg dialect sends positional parameters ($1, $2, ...), explained as they were sent.
            if not isinstance(parameters, tuple | list):
                raise RuntimeError(f"lock_due({column!r}) sent parameters {parameters!r}, not positional ones")
            parameters = tuple(parameters)
            async with database.engine.connect() as connection:
                explained = await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
                tree = _plan_tree(explained.scalar_one())
                # ANALYZE runs it, locking the due rows for as long as this transaction, rolled back.
                analysed = await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
                text_plan = "\n".join(str(row[0]) for row in analysed)
                await connection.rollback()
            nodes = list(_nodes(tree))
            # The scan reads the complaints table alone: every index in its plan is one of that table's.
            indexes = sorted({str(node["Index Name"]) for node in nodes if "Index Name" in node})
            sequential = any(n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "complaints" for n in nodes)
            plans.append(ScanPlan(column, statement, text_plan, indexes, sequential))
    finally:
        await database.close()
    return plans


def _plan_tree(explained: object) -> dict[str, Any]:
    loaded = json.loads(explained) if isinstance(explained, str) else explained
    if not isinstance(loaded, list) or not loaded or not isinstance(loaded[0], dict):
        raise RuntimeError(f"EXPLAIN (FORMAT JSON) answered {loaded!r}")
    plan = loaded[0].get("Plan")
    if not isinstance(plan, dict):
        raise RuntimeError(f"EXPLAIN (FORMAT JSON) answered no plan: {loaded!r}")
    return plan


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


@dataclass(frozen=True)
class ScheduledRun:
    """One timed RunScheduledWork over the open tickets."""

    seconds: float
    warnings: int
    breaches: int
    pending_cancelled: int
    resolutions_closed: int


async def timed_scheduled_run(complaints: "ComplaintServiceAsyncStub") -> ScheduledRun:
    """Runs the scheduled work once on the service and times it."""
    started = time.perf_counter()
    done = await complaints.RunScheduledWork(
        complaint_service_pb2.RunScheduledWorkRequest(),
        timeout=SCHEDULED_RUN_TIMEOUT_SECONDS,
        metadata=ADMIN.to_metadata(),
    )
    return ScheduledRun(
        time.perf_counter() - started,
        done.warnings_announced,
        done.breaches_announced,
        done.pending_cancelled,
        done.resolutions_closed,
    )


@dataclass(frozen=True)
class BreachScan:
    """The breach scan at many open tickets."""

    open_tickets: int
    """Open tickets written for it (besides those the phases filed)."""
    due_tickets: int
    """How many of them were due."""
    insert_seconds: float
    analyze_seconds: float
    plans: list[ScanPlan]
    """The breach scan's first, then the scans of pending and resolved tickets."""
    first_run: ScheduledRun
    """With the due tickets to announce."""
    second_run: ScheduledRun
    """Right after, with nothing left due: what a run costs over the open tickets alone."""

    @property
    def breach_plan(self) -> ScanPlan:
        """The plan of the breach scan (next_sla_check)."""
        return self.plans[0]


async def measure_breach_scan(complaints: BenchService, customer: str, sizes: ComplaintsSizes) -> BreachScan:
    """Writes the open tickets, copies of one filed for `customer`, explains the scans and times the
    scheduled runs."""
    async with grpc.aio.insecure_channel(complaints.address) as channel:
        stub = ComplaintServiceStub(channel)
        template = await stub.CreateComplaint(
            new_complaint(customer), timeout=CALL_TIMEOUT_SECONDS, metadata=AGENT.to_metadata()
        )
        print(f"writing {sizes.open_tickets:,} open tickets ({sizes.due_tickets:,} due) with one INSERT", flush=True)
        template_id = uuid.UUID(template.name.removeprefix("complaints/"))
        inserted, analysed = await write_open_tickets(
            complaints.database_url, template_id, sizes.open_tickets, sizes.due_tickets
        )
        print(f"  INSERT {inserted:.1f} s, ANALYZE {analysed:.1f} s", flush=True)
        plans = await explain_scans(complaints.database_url)
        first = await timed_scheduled_run(stub)
        second = await timed_scheduled_run(stub)
    return BreachScan(sizes.open_tickets, sizes.due_tickets, inserted, analysed, plans, first, second)


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql://postgres:@/", "postgresql://postgres@/")


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComplaintsRun:
    """What one run measured."""

    calls: CallPhases
    breach_scan: BreachScan
    idle_memory: list[IdleMemory]
    """The complaints service's and the gateway's, before the first call."""

    def as_json(self) -> dict[str, object]:
        """The phases with their ratios, the baselines, the breach scan and the idle memory."""
        scan = self.breach_scan
        return {
            "phases": self.calls.as_json(),
            "baselines": self.calls.baselines.as_json(),
            "breach_scan": {
                **asdict(scan),
                "plans": [{**asdict(p), "served_by_index": p.served_by_index} for p in scan.plans],
            },
            "idle_memory": [asdict(m) for m in self.idle_memory],
        }


def report(run: ComplaintsRun) -> str:
    """The tables of the phases and of the breach scan, with the breach scan's plan."""
    scan = run.breach_scan
    lines = [
        idle_memory_report(run.idle_memory),
        run.calls.report("complaints: CreateComplaint, then StartComplaint once on each ticket filed"),
        f"breach scan at {scan.open_tickets:,} open tickets ({scan.due_tickets:,} due), written by one INSERT "
        f"in {scan.insert_seconds:.1f} s, analysed in {scan.analyze_seconds:.1f} s",
    ]
    for plan in scan.plans:
        served = f"served by {', '.join(plan.indexes)}" if plan.served_by_index else "NOT served by an index"
        sequential = "; scans complaints sequentially" if plan.sequential else ""
        lines.append(f"  {plan.column:18} {served}{sequential}")
    for label, done in (("scheduled run", scan.first_run), ("again, none due", scan.second_run)):
        lines.append(
            f"  {label:18} {done.seconds:7.2f} s: {done.breaches} breaches and {done.warnings} warnings announced, "
            f"{done.pending_cancelled} pending cancelled, {done.resolutions_closed} resolutions closed"
        )
    lines += [f"  the breach scan as sent: {scan.breach_plan.statement}", "  its plan:"]
    lines += [f"    {line}" for line in scan.breach_plan.plan.splitlines()]
    return "\n".join(lines)


async def run(sizes: ComplaintsSizes) -> ComplaintsRun:
    """One full benchmark run."""
    workspace = Path(tempfile.mkdtemp(prefix="crm-complaints-bench-"))
    cluster = open_cluster(workspace / "postgres", temporary=True)
    processes: list[ServiceProcess] = []
    finished = False
    try:
        customer = await start_service(cluster, workspace, CUSTOMER, "CUSTOMER")
        processes.append(customer.process)
        loyalty = await start_service(cluster, workspace, LOYALTY, "LOYALTY")
        processes.append(loyalty.process)
        complaints = await start_service(
            cluster,
            workspace,
            COMPLAINTS,
            "COMPLAINTS",
            {
                "COMPLAINTS_CUSTOMER_TARGET": customer.address,
                "COMPLAINTS_CUSTOMER_FEED_TARGET": customer.address,
                "COMPLAINTS_LOYALTY_TARGET": loyalty.address,
                "COMPLAINTS_SCHEDULE_INTERVAL_SECONDS": SCHEDULE_INTERVAL_SECONDS,
            },
        )
        processes.append(complaints.process)
        backends = {
            "CUSTOMER_TARGET": customer.address,
            "LOYALTY_TARGET": loyalty.address,
            "COMPLAINTS_TARGET": complaints.address,
        }
        gateway = await start_gateway(cluster, workspace, backends, serving=[COMPLAINTS_SERVICE], environment=QUIET)
        processes.append(gateway.process)
        started = {"complaints service": complaints.process.process.pid, "gateway": gateway.process.process.pid}
        memory = await idle_memory("complaints benchmark", started)
        print(f"creating {sizes.customers:,} customers and {sizes.agents} agents", flush=True)
        async with grpc.aio.insecure_channel(customer.address) as channel:
            customers = await create_customers(CustomerServiceStub(channel), sizes.customers)
        async with grpc.aio.insecure_channel(complaints.address) as channel:
            await create_agents(ComplaintServiceStub(channel), sizes.agents)
        concurrencies, limits = sizes.concurrency, PhaseLimits(sizes.requests, sizes.seconds)
        baselines = await measure_baselines(workspace, concurrencies, limits)
        print(HEADER, flush=True)
        direct = grpc.aio.insecure_channel(complaints.address)
        phases = await measure_path(DIRECT, direct, customers, concurrencies, limits, tuple(AGENT.to_metadata()))
        through_gateway, bearer = gateway.channel(), gateway.employee_metadata(AGENT.roles, subject=AGENT.subject)
        phases += await measure_path(GATEWAY, through_gateway, customers, concurrencies, limits, bearer)
        scan = await measure_breach_scan(complaints, customers[0], sizes)
        finished = True
        return ComplaintsRun(CallPhases(phases, baselines), scan, memory)
    finally:
        for process in reversed(processes):
            await asyncio.to_thread(process.stop)
        cluster.stop()
        # The service logs explain a failed run; a finished one needs none of it.
        if finished:
            shutil.rmtree(workspace, ignore_errors=True)
        else:
            print(f"service, echo and gateway logs kept in {workspace}", file=sys.stderr)


def bench(argv: list[str] | None = None) -> ComplaintsRun:
    """Runs the benchmark, prints the tables and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, help=f"customers filing (default {FULL.customers:,})")
    parser.add_argument("--agents", type=int, help=f"agents assigned tickets (default {FULL.agents})")
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"calls in flight (default {FULL.concurrency})")
    parser.add_argument("--requests", type=int, help=f"most requests per phase (default {FULL.requests:,})")
    parser.add_argument("--seconds", type=float, help=f"longest phase (default {FULL.seconds:g})")
    parser.add_argument("--open-tickets", type=int, help=f"open tickets scanned (default {FULL.open_tickets:,})")
    parser.add_argument("--due-tickets", type=int, help=f"of which due (default {FULL.due_tickets:,})")
    sizes = chosen_sizes(parser, argv, full=FULL, quick=QUICK)
    if min(sizes.customers, sizes.agents, min(sizes.concurrency), sizes.requests, sizes.open_tickets) < 1:
        parser.error("customers, agents, concurrency, requests and open tickets must be positive")
    if sizes.seconds <= 0 or not 0 <= sizes.due_tickets <= sizes.open_tickets:
        parser.error("seconds must be positive, and due tickets between 0 and the open tickets")
    measured = asyncio.run(run(sizes))
    print(report(measured))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(measured.as_json(), indent=2))
    print(f"written to {RESULTS.relative_to(REPOSITORY)}")
    return measured


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark."""
    bench(argv)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.exit(main())
