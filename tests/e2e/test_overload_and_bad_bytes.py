"""Servers under a flood, bad bytes and a lost backend, with every server a real process on 127.0.0.1.

Under a flood of reads from one user, health keeps answering SERVING, a quiet user is still served,
and what cannot be served is refused at once as SERVER_OVERLOADED: at the customer service behind the
gateway (which shares its slots between the users the gateway names) and at the gateway itself (which
shares its own between the users its callers' tokens prove). A call whose deadline is too short is
refused before any work. Bytes that are not a method's message are INVALID_ARGUMENT MALFORMED_REQUEST
for every method the gateway exposes, through the gateway (called by an administrator) and directly,
naming nothing internal, writing nothing, logging one warning line where refused. A backend the
gateway cannot reach is UNAVAILABLE naming the service, never its address.
"""

import asyncio
import json
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import message as protobuf_message
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chassis.database import async_url
from chassis.settings import Environment
from chassis.status import status_of
from crm.customer.v1 import customer_service_pb2
from crm.customer.v1.customer_service_pb2_grpc import CustomerServiceStub
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from gateway.app import contract_messages, guarded_methods
from gateway.policy import load_policy
from gateway.routes import COMPLAINTS_SERVICE, EXPOSED_SERVICES, OFFERS_SERVICE, ExposedService
from gateway.settings import DEFAULT_POLICY_FILE
from services.complaints.app import COMPLAINTS
from services.complaints.settings import ComplaintsSettings
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from services.offers.app import OFFERS
from services.offers.settings import OffersSettings
from tests.gateway_support import employee_channel, gateway_environment
from tests.processes import ANY_PORT, ServiceProcess, refused_address, start_process, wait_until_serving
from tests.support import CUSTOMER_SERVICE, LOYALTY_SERVICE, create_request, person
from tools.credentials import LocalCredentials
from tools.postgres import PostgresCluster

# Small limits, so that one test process overloads a server. A full queue refuses a user's call once
# that user waits in as many places as the busiest other, and a queued call waits at most a second
# (short beside the callers' 5 s deadlines): 16 places and a second hold the quiet user's calls even
# when a busy shared machine delivers them in bunches or stalls the server for a moment.
MAX_CONCURRENT = 4
MAX_QUEUED = 16
QUEUE_WAIT_SECONDS = 1.0
SMALL_LIMITS = {
    "MAX_CONCURRENT_RPCS": str(MAX_CONCURRENT),
    "MAX_QUEUED_RPCS": str(MAX_QUEUED),
    "MAX_QUEUE_WAIT_SECONDS": str(QUEUE_WAIT_SECONDS),
}
MIN_DEADLINE_SECONDS = 1.0
"""The customer service refuses calls with less time left than this (half of it leaves the refusal
time to come back before the caller's own deadline ends the call)."""

FLOODERS = 200
"""Concurrent readers of the flooding user, each calling again as soon as answered."""
FLOOD_SECONDS = 3.0
CALLS_PER_FLOODER = 300
"""Bound on each reader's calls, whatever the time bound."""
QUIET_INTERVAL_SECONDS = 0.1
HEALTH_INTERVAL_SECONDS = 0.05
# Each user calls the gateway with a token of its own: the gateway shares its slots by who a token proves.
FLOODING_JOB = "nightly-export-job"
FLOODING_JOB_ROLES = ("back-office",)
FLOODING_JOB_BEHIND_THE_GATEWAY = (("x-crm-caller-subject", FLOODING_JOB),)
"""The flooding user as the gateway names it to a service."""
QUIET_AGENT = "agent-dilnoza"
QUIET_AGENT_ROLES = ("agent", "supervisor")
"""A supervising agent: listing customers, half of each reader's calls, needs a supervisor."""
ADMINISTRATOR = "admin-rustam"
"""Sends the bad bytes: the policy lets an administrator call every exposed method."""
UNTHROTTLED = {"EMPLOYEE_RATE_PER_SECOND": "100000", "EMPLOYEE_RATE_BURST": "100000"}
"""The flood is of calls beyond what a server admits, not beyond a user's rate: no rate limit meets it."""

LOGS_AS_READ_HERE = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
"""The tests read the processes' access and warning lines, whatever the environment asks for."""
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SEED = 20261201


NEXT_BEST_ACTION_SERVICE = "crm.offers.v1.NextBestActionService"
BACKENDS = {
    LOYALTY_SERVICE: "loyalty",
    COMPLAINTS_SERVICE: "complaints",
    OFFERS_SERVICE: "offers",
    NEXT_BEST_ACTION_SERVICE: "offers",
}
"""The process serving each exposed service that is not the customer service's (which also serves
usage, billing and segments); the offers process also serves next-best actions."""


@dataclass
class System:
    """The processes under test, their databases, and customers for readers to read."""

    customer: ServiceProcess
    """Admitting little (SMALL_LIMITS)."""
    backends: dict[str, ServiceProcess]
    """Every service process behind the gateways, by name (`customer`, `loyalty`, ...)."""
    database_urls: dict[str, str]
    """Each backend's database, by the same names."""
    gateway: ServiceProcess
    """In front of the services, admitting as much as it does by default."""
    small_gateway: ServiceProcess
    """In front of the services, admitting as little as the customer service."""
    credentials: LocalCredentials
    customers: list[str] = field(default_factory=list)

    def as_employee(self, gateway: ServiceProcess, subject: str, roles: tuple[str, ...]) -> grpc.aio.Channel:
        """A channel to `gateway` carrying the token of employee `subject` with `roles`."""
        return employee_channel(gateway, self.credentials, roles, subject=subject)


def backend_of(service_name: str) -> str:
    """The name of the process serving an exposed service."""
    return BACKENDS.get(service_name, "customer")


def gateway_targets(backends: dict[str, ServiceProcess]) -> dict[str, str]:
    """The gateway's target settings (`CUSTOMER_TARGET`, ...) pointing each exposed service at its process."""
    return {
        service.target_variable.removeprefix("GATEWAY_"): backends[backend_of(service.name)].address
        for service in EXPOSED_SERVICES
    }


def migrated(postgres: PostgresCluster, worker_id: str, customer_url: str) -> dict[str, str]:
    """A migrated database of each backend."""
    urls = {"customer": customer_url}
    for name, definition, settings in (
        ("loyalty", LOYALTY, LoyaltySettings),
        ("complaints", COMPLAINTS, ComplaintsSettings),
        ("offers", OFFERS, OffersSettings),
    ):
        urls[name] = postgres.ensure_database(f"{name}_overload_{worker_id}")
        definition.migrate(settings.from_environment(Environment({f"{name.upper()}_DATABASE_URL": urls[name]})))
    return urls


@pytest.fixture(scope="module")
async def system(
    migrated_database_url: Callable[[str], str],
    migrated_gateway_database_url: Callable[[str], str],
    local_credentials: LocalCredentials,
    postgres: PostgresCluster,
    worker_id: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[System]:
    urls = migrated(postgres, worker_id, migrated_database_url("customer_overload"))
    logs = Path(tmp_path_factory.mktemp("overload-logs"))
    customer = start_process(
        "customer",
        "services.customer",
        {
            **LOGS_AS_READ_HERE,
            "CUSTOMER_DATABASE_URL": urls["customer"],
            "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
            "CUSTOMER_SHUTDOWN_DRAIN_SECONDS": "0",
            "CUSTOMER_MIN_DEADLINE_SECONDS": str(MIN_DEADLINE_SECONDS),
            **{f"CUSTOMER_{name}": value for name, value in SMALL_LIMITS.items()},
        },
        logs,
    )
    loyalty = start_process(
        "loyalty",
        "services.loyalty",
        {
            **LOGS_AS_READ_HERE,
            "LOYALTY_DATABASE_URL": urls["loyalty"],
            "LOYALTY_GRPC_ADDRESS": ANY_PORT,
            "LOYALTY_SHUTDOWN_DRAIN_SECONDS": "0",
            # No scheduled work writes while the tests count rows.
            "LOYALTY_SCHEDULE_INTERVAL_SECONDS": "86400",
        },
        logs,
    )
    backends = {"customer": customer, "loyalty": loyalty}
    gateways: list[ServiceProcess] = []
    try:
        await asyncio.gather(
            wait_until_serving(customer, CUSTOMER_SERVICE), wait_until_serving(loyalty, LOYALTY_SERVICE)
        )
        backends["complaints"] = start_process(
            "complaints",
            "services.complaints",
            {
                **LOGS_AS_READ_HERE,
                "COMPLAINTS_DATABASE_URL": urls["complaints"],
                "COMPLAINTS_GRPC_ADDRESS": ANY_PORT,
                "COMPLAINTS_SHUTDOWN_DRAIN_SECONDS": "0",
                "COMPLAINTS_CUSTOMER_TARGET": customer.address,
                "COMPLAINTS_LOYALTY_TARGET": loyalty.address,
                # No scheduled work or compensation sender writes while the tests count rows.
                "COMPLAINTS_SCHEDULE_INTERVAL_SECONDS": "86400",
                "COMPLAINTS_COMPENSATION_INTERVAL_SECONDS": "86400",
            },
            logs,
        )
        backends["offers"] = start_process(
            "offers",
            "services.offers",
            {
                **LOGS_AS_READ_HERE,
                "OFFERS_DATABASE_URL": urls["offers"],
                "OFFERS_GRPC_ADDRESS": ANY_PORT,
                "OFFERS_SHUTDOWN_DRAIN_SECONDS": "0",
                "OFFERS_CUSTOMER_TARGET": customer.address,
                # Neither plan changes sent nor customer events followed write while the tests count rows.
                "OFFERS_PLAN_CHANGE_INTERVAL_SECONDS": "86400",
                "OFFERS_FOLLOW_CUSTOMER_FEED": "false",
            },
            logs,
        )
        await asyncio.gather(
            wait_until_serving(backends["complaints"], COMPLAINTS_SERVICE),
            wait_until_serving(backends["offers"], OFFERS_SERVICE),
        )
        gateway_database_url = migrated_gateway_database_url("gateway_overload")

        def gateway_settings(**limits: str) -> dict[str, str]:
            return {
                **LOGS_AS_READ_HERE,
                **gateway_environment(
                    local_credentials,
                    gateway_database_url,
                    **gateway_targets(backends),
                    **UNTHROTTLED,
                    **limits,
                ),
            }

        gateways = [
            start_process("gateway", "gateway", gateway_settings(), logs),
            start_process("small-gateway", "gateway", gateway_settings(**SMALL_LIMITS), logs),
        ]
        await asyncio.gather(*(wait_until_serving(g, service.name) for g in gateways for service in EXPOSED_SERVICES))
        running = System(customer, backends, urls, gateways[0], gateways[1], local_credentials)
        async with running.as_employee(running.gateway, QUIET_AGENT, QUIET_AGENT_ROLES) as channel:
            for _ in range(20):
                created = await CustomerServiceStub(channel).CreateCustomer(create_request(person()), timeout=5)
                running.customers.append(created.name)
        yield running
    finally:
        for process in [*gateways, *reversed(backends.values())]:
            await asyncio.to_thread(process.stop)


# --- what the tests read ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one call ended, and how long it took as its caller saw it."""

    code: grpc.StatusCode
    reason: str
    domain: str
    seconds: float


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo a failed call carried (empty when it carried none)."""
    info = error_details_pb2.ErrorInfo()
    status = status_of(error)
    for detail in status.details if status is not None else ():
        if detail.Unpack(info):
            break
    return info


def texts_of(error: grpc.aio.AioRpcError) -> list[str]:
    """Everything a failed call tells its caller in words: the message and the details' texts."""
    texts = [error.details() or ""]
    status = status_of(error)
    for detail in status.details if status is not None else ():
        info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
        if detail.Unpack(info):
            texts.extend([info.reason, info.domain, *info.metadata.keys(), *info.metadata.values()])
        elif detail.Unpack(bad_request):
            texts.extend(words for v in bad_request.field_violations for words in (v.field, v.description))
        else:
            texts.append(detail.type_url)
    return texts


async def timed(call: Awaitable[object]) -> Outcome:
    started = time.perf_counter()
    try:
        await call
    except grpc.aio.AioRpcError as error:
        info = error_info(error)
        return Outcome(error.code(), info.reason, info.domain, time.perf_counter() - started)
    return Outcome(grpc.StatusCode.OK, "", "", time.perf_counter() - started)


class LogCursor:
    """Reads the JSON lines a process logged since the last read."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = path.stat().st_size

    def new_records(self) -> list[dict[str, object]]:
        with self._path.open("rb") as log:
            log.seek(self._offset)
            written = log.read()
        self._offset += len(written)
        return [record_of(line) for line in written.decode(errors="replace").splitlines()]


def record_of(line: str) -> dict[str, object]:
    """A log line as its JSON record; a line that is not one (a traceback) as its message."""
    try:
        record = json.loads(line)
    except ValueError:
        return {"message": line}
    return record if isinstance(record, dict) else {"message": line}


async def settled_rows(database_url: str, timeout_seconds: float = 30.0) -> dict[str, int]:
    """Rows of every table once the service's background work (segment evaluation announcing the
    customers earlier tests created) has settled: two counts a second apart agree."""
    counts = await count_rows(database_url)
    async with asyncio.timeout(timeout_seconds):
        while True:
            await asyncio.sleep(1.0)
            again = await count_rows(database_url)
            if again == counts:
                return counts
            counts = again


async def count_rows(database_url: str) -> dict[str, int]:
    """Rows of every table of a service's database."""
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as connection:
            tables = await connection.execute(
                text(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            )
            return {
                table: (await connection.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar_one()
                for table in list(tables.scalars())
            }
    finally:
        await engine.dispose()


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    if not ordered:
        return "none"
    p50, p99 = (ordered[min(len(ordered) - 1, int(f * len(ordered)))] for f in (0.5, 0.99))
    return f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"


# --- a flood of reads from one user -----------------------------------------------------------------


@dataclass
class FloodRun:
    """What the callers saw while one user flooded a server, and what the refusing server logged."""

    flooding: list[Outcome] = field(default_factory=list)
    quiet: list[Outcome] = field(default_factory=list)
    health: dict[str, list[str]] = field(default_factory=dict)
    """Per probed server, each health answer: the status' name, or the failed check's code name."""
    refusals_in_server: list[float] = field(default_factory=list)
    """Seconds each refused call spent in the refusing server, from its access log."""

    def shed(self) -> list[Outcome]:
        return [o for o in self.flooding if o.code != grpc.StatusCode.OK]

    def admitted(self) -> list[Outcome]:
        return [o for o in self.flooding if o.code == grpc.StatusCode.OK]

    def quiet_served(self) -> float:
        return sum(o.code == grpc.StatusCode.OK for o in self.quiet) / len(self.quiet)


def read_call(stub: CustomerServiceStub, customers: list[str], turn: int) -> Awaitable[object]:
    """A reader's call: every other one lists a page, the rest read one customer."""
    if turn % 2:
        return stub.ListCustomers(customer_service_pb2.ListCustomersRequest(page_size=10), timeout=5)
    name = customers[turn % len(customers)]
    return stub.GetCustomer(customer_service_pb2.GetCustomerRequest(name=name), timeout=5)


async def flood(
    system: System, gateway: ServiceProcess, refusing: ServiceProcess, probed: dict[str, ServiceProcess]
) -> FloodRun:
    """FLOODERS readers of FLOODING_JOB call `gateway` for FLOOD_SECONDS while a quiet agent reads ten
    times a second and health is asked every 50 ms at each `probed` server (by label); `refusing` is
    the server whose access log tells how long its refusals took."""
    run = FloodRun(health={label: [] for label in probed})
    # Each party is its own client, on its own connection.
    flooding = system.as_employee(gateway, FLOODING_JOB, FLOODING_JOB_ROLES)
    quiet = system.as_employee(gateway, QUIET_AGENT, QUIET_AGENT_ROLES)
    # Health is asked as the flooding user, whose own calls are being refused: fairness cannot let it
    # through. A service hears of that user from the gateway; a gateway, from the user's token.
    probes = {
        label: (grpc.aio.insecure_channel(server.address), FLOODING_JOB_BEHIND_THE_GATEWAY)
        if server is system.customer
        else (system.as_employee(server, FLOODING_JOB, FLOODING_JOB_ROLES), ())
        for label, server in probed.items()
    }
    channels = [flooding, quiet, *(channel for channel, _ in probes.values())]
    for channel in channels:
        await asyncio.wait_for(channel.channel_ready(), timeout=5)
    refusing_log = LogCursor(refusing.log_path)
    ends_at = time.perf_counter() + FLOOD_SECONDS

    async def reader(stub: CustomerServiceStub, index: int) -> None:
        for turn in range(CALLS_PER_FLOODER):
            if time.perf_counter() >= ends_at:
                return
            run.flooding.append(await timed(read_call(stub, system.customers, index + turn)))

    async def quiet_read(stub: CustomerServiceStub, turn: int) -> None:
        run.quiet.append(await timed(read_call(stub, system.customers, turn)))

    async def quiet_agent(stub: CustomerServiceStub) -> None:
        # On its own schedule, however slow the answers, as an agent's screen refreshes.
        reads = []
        for turn in range(round(FLOOD_SECONDS / QUIET_INTERVAL_SECONDS)):
            reads.append(asyncio.create_task(quiet_read(stub, turn)))
            await asyncio.sleep(QUIET_INTERVAL_SECONDS)
        await asyncio.gather(*reads)

    async def probe(label: str, channel: grpc.aio.Channel, caller: tuple[tuple[str, str], ...]) -> None:
        health = health_pb2_grpc.HealthStub(channel)
        while time.perf_counter() < ends_at:
            next_check = time.perf_counter() + HEALTH_INTERVAL_SECONDS
            try:
                request = health_pb2.HealthCheckRequest(service=CUSTOMER_SERVICE)
                answer = await health.Check(request, metadata=caller, timeout=2)
                run.health[label].append(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
            except grpc.aio.AioRpcError as error:
                run.health[label].append(error.code().name)
            await asyncio.sleep(max(0.0, next_check - time.perf_counter()))

    try:
        async with asyncio.timeout(FLOOD_SECONDS + 20):
            await asyncio.gather(
                *(reader(CustomerServiceStub(flooding), index) for index in range(FLOODERS)),
                quiet_agent(CustomerServiceStub(quiet)),
                *(probe(label, channel, caller) for label, (channel, caller) in probes.items()),
            )
    finally:
        for channel in channels:
            await channel.close()
    await asyncio.sleep(0.5)  # a call's access log line is written just after its answer
    run.refusals_in_server = [
        float(str(record["duration_ms"])) / 1000
        for record in refusing_log.new_records()
        if record.get("grpc_code") == "RESOURCE_EXHAUSTED"
    ]
    return run


def report(title: str, run: FloodRun) -> None:
    served = sum(o.code == grpc.StatusCode.OK for o in run.quiet)
    print(
        f"\n{title}: {len(run.flooding)} flooding calls; {len(run.admitted())} admitted "
        f"({percentiles([o.seconds for o in run.admitted()])}); {len(run.shed())} shed "
        f"({percentiles([o.seconds for o in run.shed()])} at the caller, "
        f"{percentiles(run.refusals_in_server)} in the server); "
        f"quiet agent served {served}/{len(run.quiet)} = {run.quiet_served():.0%} "
        f"({percentiles([o.seconds for o in run.quiet])}); health answers "
        + ", ".join(f"{len(answers)} at the {label}" for label, answers in run.health.items())
        + "".join(
            f"; quiet call {o.code.name} {o.reason} {o.domain} after {o.seconds * 1000:.0f} ms"
            for o in run.quiet
            if o.code != grpc.StatusCode.OK
        )
    )


@pytest.fixture(scope="module")
async def service_flooded(system: System) -> FloodRun:
    """The customer service is the bottleneck: the gateway admits every call and passes it on, naming
    its user, so the service shares its slots between the users behind the gateway."""
    probed = {"service": system.customer, "gateway": system.gateway}
    run = await flood(system, system.gateway, system.customer, probed)
    report("customer service flooded through the gateway", run)
    return run


@pytest.fixture(scope="module")
async def gateway_flooded(system: System) -> FloodRun:
    """The gateway is the bottleneck: it admits no more than the service, so the service never queues
    and the gateway shares its own slots between the users calling it."""
    run = await flood(system, system.small_gateway, system.small_gateway, {"gateway": system.small_gateway})
    report("small gateway flooded", run)
    return run


# Each flood, and the error domain of the server that refuses in it.
FLOODS = {"service_flooded": "customer.crm", "gateway_flooded": "gateway.crm"}


@pytest.mark.parametrize("flooded", FLOODS)
def test_the_flood_is_more_than_the_server_admits(flooded: str, request: pytest.FixtureRequest):
    run: FloodRun = request.getfixturevalue(flooded)
    assert run.shed(), "no call was refused: the flood did not overload the server"
    assert run.admitted(), "no flooding call was served at all"


@pytest.mark.parametrize("flooded", FLOODS)
def test_health_answers_serving_at_every_check_while_a_user_floods(flooded: str, request: pytest.FixtureRequest):
    run: FloodRun = request.getfixturevalue(flooded)
    for label, answers in run.health.items():
        assert len(answers) >= 5, f"health at the {label} answered {len(answers)} times"
        assert set(answers) == {"SERVING"}, f"health at the {label}: {answers}"


@pytest.mark.parametrize("flooded", FLOODS)
def test_a_quiet_user_is_served_while_another_user_floods(flooded: str, request: pytest.FixtureRequest):
    run: FloodRun = request.getfixturevalue(flooded)
    assert run.quiet_served() >= 0.8, [o for o in run.quiet if o.code != grpc.StatusCode.OK]


@pytest.mark.parametrize("flooded", FLOODS)
def test_calls_beyond_the_queue_are_resource_exhausted_server_overloaded(flooded: str, request: pytest.FixtureRequest):
    run: FloodRun = request.getfixturevalue(flooded)
    refusals = {(o.code, o.reason, o.domain) for o in run.shed()}
    assert refusals == {(grpc.StatusCode.RESOURCE_EXHAUSTED, "SERVER_OVERLOADED", FLOODS[flooded])}


@pytest.mark.parametrize("flooded", FLOODS)
def test_calls_beyond_the_queue_are_refused_at_once(flooded: str, request: pytest.FixtureRequest):
    run: FloodRun = request.getfixturevalue(flooded)
    # Timed inside the refusing server: the callers' own figures add the queue of this machine's CPUs,
    # which 200 readers calling again at once keep full whatever the server does.
    assert len(run.refusals_in_server) >= len(run.shed())
    assert statistics.median(run.refusals_in_server) < QUEUE_WAIT_SECONDS / 2


@pytest.mark.parametrize("route", ["directly", "through the gateway"])
async def test_a_call_whose_deadline_is_too_short_is_refused_before_any_work(system: System, route: str):
    channel = (
        grpc.aio.insecure_channel(system.customer.address)
        if route == "directly"
        else system.as_employee(system.gateway, QUIET_AGENT, QUIET_AGENT_ROLES)
    )
    before = await count_rows(system.database_urls["customer"])
    async with channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=5)
        outcome = await timed(
            CustomerServiceStub(channel).CreateCustomer(create_request(person()), timeout=MIN_DEADLINE_SECONDS / 2)
        )
    print(f"\ndeadline too short, {route}: {outcome.code.name} {outcome.reason} in {outcome.seconds * 1000:.0f} ms")
    assert (outcome.code, outcome.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_TOO_SHORT")
    assert await count_rows(system.database_urls["customer"]) == before


# --- bytes that are not the method's message ---------------------------------------------------------


@dataclass(frozen=True)
class BadCall:
    """Bytes that are not a method's message, sent along one route."""

    service: ExposedService
    method: MethodDescriptor
    kind: str
    """`random-bytes` or `truncated-request`."""
    route: str
    """`gateway` or `direct`."""
    payload: bytes

    @property
    def path(self) -> str:
        return f"/{self.service.name}/{self.method.name}"

    @property
    def backend(self) -> str:
        """The process serving the method behind the gateway."""
        return backend_of(self.service.name)

    @property
    def refused_by(self) -> str:
        """The process that refuses the bytes: the gateway when it reads an employee's request itself
        (what a call changes, for the audit, or a field a limit is on), else the backend."""
        rule = POLICY.methods[self.path]
        return "gateway" if self.route == "gateway" and (rule.mutates or rule.limit is not None) else self.backend

    def __str__(self) -> str:
        return f"{self.method.name}-{self.kind}-{self.route}"


@dataclass(frozen=True)
class BadCallAnswer:
    """What came back, and what each process logged meanwhile."""

    code: grpc.StatusCode
    reason: str
    texts: list[str]
    logged: dict[str, list[dict[str, object]]]


def well_formed(descriptor: Descriptor, depth: int = 0) -> protobuf_message.Message:
    """A message of `descriptor` with every field set (nested messages two levels deep)."""
    request = GetMessageClass(descriptor)()
    for item in descriptor.fields:
        if item.message_type is not None:
            if depth < 2 and not item.message_type.GetOptions().map_entry:
                nested = getattr(request, item.name)
                (nested.add() if item.is_repeated else nested).CopyFrom(well_formed(item.message_type, depth + 1))
        elif item.is_repeated:
            getattr(request, item.name).append(scalar_value(item))
        else:
            setattr(request, item.name, scalar_value(item))
    return request


def scalar_value(item: FieldDescriptor) -> object:
    if item.type == FieldDescriptor.TYPE_STRING:
        return "customers/6b0d5a3e-2222-4000-8000-000000000000"
    if item.type == FieldDescriptor.TYPE_BYTES:
        return b"opaque"
    if item.type == FieldDescriptor.TYPE_BOOL:
        return True
    if item.type == FieldDescriptor.TYPE_ENUM:
        return item.enum_type.values[-1].number
    if item.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1.5
    return 7


def undecodable(descriptor: Descriptor, payload: bytes) -> bool:
    try:
        GetMessageClass(descriptor).FromString(payload)
    except protobuf_message.DecodeError:
        return True
    return False


def random_bytes(descriptor: Descriptor, generator: random.Random) -> bytes:
    """Seeded random bytes that are no message of `descriptor` (bytes that happen to be one are a
    request like any other, answered by the method itself)."""
    for _ in range(100):
        payload = generator.randbytes(generator.randint(8, 200))
        if undecodable(descriptor, payload):
            return payload
    raise AssertionError(f"100 random payloads all decoded as {descriptor.full_name}")


def truncated(descriptor: Descriptor) -> bytes:
    """A well-formed request of `descriptor` cut short inside a field."""
    whole = well_formed(descriptor).SerializeToString()
    for length in range(len(whole) * 2 // 3, 0, -1):
        if undecodable(descriptor, whole[:length]):
            return whole[:length]
    raise AssertionError(f"no cut of a {descriptor.full_name} fails to decode")


def bad_calls() -> list[BadCall]:
    """Both kinds of bad bytes for every exposed method, each through the gateway and directly."""
    generator = random.Random(SEED)
    calls = []
    for service in EXPOSED_SERVICES:
        for method in service.public_methods:
            payloads = {
                "random-bytes": random_bytes(method.input_type, generator),
                "truncated-request": truncated(method.input_type),
            }
            for kind, payload in payloads.items():
                calls.extend(BadCall(service, method, kind, route, payload) for route in ("gateway", "direct"))
    return calls


POLICY = load_policy(DEFAULT_POLICY_FILE, guarded_methods(), contract_messages())
BAD_CALLS = bad_calls()


def send_raw(channel: grpc.aio.Channel, call: BadCall) -> Awaitable[object]:
    """Sends the payload as the method's request (in a one-message stream to a client-streaming method)."""
    options: dict[str, object] = {"timeout": 5}
    if call.method.client_streaming:

        async def one_message() -> AsyncIterator[bytes]:
            yield call.payload

        if call.method.server_streaming:
            return all_of(channel.stream_stream(call.path)(one_message(), **options))
        return channel.stream_unary(call.path)(one_message(), **options)
    if call.method.server_streaming:
        return all_of(channel.unary_stream(call.path)(call.payload, **options))
    return channel.unary_unary(call.path)(call.payload, **options)


async def all_of(responses: AsyncIterator[bytes]) -> list[bytes]:
    return [response async for response in responses]


@dataclass
class BadBytesRun:
    """Every bad call's answer, and the databases' rows before and after them all."""

    answers: dict[str, BadCallAnswer]
    rows_before: dict[str, dict[str, int]]
    rows_after: dict[str, dict[str, int]]


@pytest.fixture(scope="module")
async def bad_bytes_sent(system: System) -> BadBytesRun:
    databases = system.database_urls
    processes = {**system.backends, "gateway": system.gateway}
    channels = {
        **{name: grpc.aio.insecure_channel(process.address) for name, process in system.backends.items()},
        "gateway": system.as_employee(system.gateway, ADMINISTRATOR, ("admin",)),
    }
    rows_before = {name: await settled_rows(url) for name, url in databases.items()}
    logs = {name: LogCursor(process.log_path) for name, process in processes.items()}
    answers = {}
    try:
        async with asyncio.timeout(60):
            for call in BAD_CALLS:
                try:
                    await send_raw(channels["gateway" if call.route == "gateway" else call.backend], call)
                    code, reason, texts = grpc.StatusCode.OK, "", []
                except grpc.aio.AioRpcError as error:
                    code, reason, texts = error.code(), error_info(error).reason, texts_of(error)
                # Calls go one at a time and a server logs a bad request before answering it, so the
                # warnings read now are this call's (access log lines may trail into the next call's).
                logged = {name: log.new_records() for name, log in logs.items()}
                answers[str(call)] = BadCallAnswer(code, reason, texts, logged)
    finally:
        for channel in channels.values():
            await channel.close()
    rows_after = {name: await count_rows(url) for name, url in databases.items()}
    codes = [answer.code.name for answer in answers.values()]
    warnings = sum(r.get("level") == "WARNING" for a in answers.values() for rs in a.logged.values() for r in rs)
    print(
        f"\nbad bytes: {len(BAD_CALLS)} calls to {len(BAD_CALLS) // 4} methods: "
        + ", ".join(f"{codes.count(code)} {code}" for code in sorted(set(codes)))
        + f"; {warnings} warning lines; rows "
        + ", ".join(f"{name} {sum(rows.values())}" for name, rows in rows_after.items())
        + f", unchanged: {rows_before == rows_after}"
    )
    return BadBytesRun(answers, rows_before, rows_after)


@pytest.mark.parametrize("call", BAD_CALLS, ids=str)
def test_bytes_that_are_not_the_methods_message_are_invalid_argument_malformed_request(
    call: BadCall, bad_bytes_sent: BadBytesRun
):
    answer = bad_bytes_sent.answers[str(call)]
    assert (answer.code, answer.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")


@pytest.mark.parametrize("call", BAD_CALLS, ids=str)
def test_the_refusal_of_bad_bytes_names_nothing_internal(call: BadCall, bad_bytes_sent: BadBytesRun):
    answer = bad_bytes_sent.answers[str(call)]
    internal = ("Traceback", "Exception", "Error", "rror parsing", "protobuf", "serializ", "_pb2", "crm.")
    named = [
        (words, word) for words in answer.texts for word in (*internal, call.method.input_type.name) if word in words
    ]
    assert answer.texts and not named


@pytest.mark.parametrize("call", BAD_CALLS, ids=str)
def test_a_bad_call_logs_one_warning_line_where_it_is_refused(call: BadCall, bad_bytes_sent: BadBytesRun):
    logged = bad_bytes_sent.answers[str(call)].logged
    warnings = {name: sum(r.get("level") == "WARNING" for r in records) for name, records in logged.items()}
    assert warnings == {name: int(name == call.refused_by) for name in logged}


@pytest.mark.parametrize("call", BAD_CALLS, ids=str)
def test_a_bad_call_logs_nothing_worse_than_a_warning(call: BadCall, bad_bytes_sent: BadBytesRun):
    logged = bad_bytes_sent.answers[str(call)].logged
    worse = [r for records in logged.values() for r in records if r.get("level") in ("ERROR", "CRITICAL")]
    tracebacks = [r for records in logged.values() for r in records if "exc_info" in r or "Traceback" in str(r)]
    assert not worse and not tracebacks


def test_bad_bytes_write_nothing(bad_bytes_sent: BadBytesRun):
    assert bad_bytes_sent.rows_after == bad_bytes_sent.rows_before


async def test_every_server_still_serves_after_bad_bytes(system: System, bad_bytes_sent: BadBytesRun):
    served = {"customer": CUSTOMER_SERVICE, **{backend: service for service, backend in BACKENDS.items()}}
    probes = [
        *((process.address, served[name]) for name, process in system.backends.items()),
        *((system.gateway.health_address, service.name) for service in EXPOSED_SERVICES),
    ]
    statuses = {}
    for address, service_name in probes:
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service_name), timeout=2)
        statuses[(address, service_name)] = answer.status
    assert set(statuses.values()) == {SERVING}, statuses


# --- a backend the gateway cannot reach -------------------------------------------------------------


@dataclass
class GatewayWithoutLoyalty:
    """A gateway whose loyalty backend refuses connections."""

    gateway: ServiceProcess
    loyalty_target: str


@pytest.fixture(scope="module")
async def gateway_without_loyalty(
    system: System,
    migrated_gateway_database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[GatewayWithoutLoyalty]:
    logs = Path(tmp_path_factory.mktemp("gateway-without-loyalty-logs"))
    with refused_address() as no_loyalty:
        gateway = start_process(
            "gateway-without-loyalty",
            "gateway",
            {
                **LOGS_AS_READ_HERE,
                **gateway_environment(
                    system.credentials,
                    migrated_gateway_database_url("gateway_overload"),
                    **{**gateway_targets(system.backends), "LOYALTY_TARGET": no_loyalty},
                ),
            },
            logs,
        )
        try:
            await wait_until_serving(gateway, CUSTOMER_SERVICE)
            yield GatewayWithoutLoyalty(gateway, no_loyalty)
        finally:
            await asyncio.to_thread(gateway.stop)


async def test_a_call_to_an_unreachable_backend_is_unavailable_naming_the_service_not_its_address(
    system: System, gateway_without_loyalty: GatewayWithoutLoyalty
):
    async with system.as_employee(gateway_without_loyalty.gateway, QUIET_AGENT, QUIET_AGENT_ROLES) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await LoyaltyServiceStub(channel).GetAccount(
                loyalty_service_pb2.GetAccountRequest(name="accounts/6b0d5a3e-3333-4000-8000-000000000000"),
                timeout=5,
            )
    info = error_info(raised.value)
    print(f"\nunreachable backend: {raised.value.code().name} {info.reason} {raised.value.details()!r}")
    assert (raised.value.code(), info.reason) == (grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE")
    assert dict(info.metadata) == {"service": LOYALTY_SERVICE}
    told = " ".join(texts_of(raised.value))
    host, _, port = gateway_without_loyalty.loyalty_target.rpartition(":")
    assert not [hidden for hidden in (host, port, "ipv4", "Connection refused", "connect") if hidden in told]


async def test_the_gateway_reports_an_unreachable_backend_not_serving_and_the_others_serving(
    gateway_without_loyalty: GatewayWithoutLoyalty,
):
    async with grpc.aio.insecure_channel(gateway_without_loyalty.gateway.health_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        statuses = {
            name: (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)).status
            for name in (LOYALTY_SERVICE, CUSTOMER_SERVICE)
        }
    assert statuses == {LOYALTY_SERVICE: NOT_SERVING, CUSTOMER_SERVICE: SERVING}
