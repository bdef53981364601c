"""Faults injected into a running system, and what clients and health saw meanwhile.

`EarnLoad` is a crowd of clients posting points; each request keeps its `request_id` across the
attempts it takes, so that a retry after any failure may repeat work only if the service lets it.
`HealthRecorder` follows a server's health with `Watch` and keeps every change with its time.
The PostgreSQL faults act on an embedded server by its data folder, as an operator would.
"""

import asyncio
import os
import pwd
import random
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.status import from_rpc_error
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tools.postgres import POSTGRES_BIN_PATH

# Test clients reconnect quickly to a server that comes back, instead of gRPC's default backoff of
# up to two minutes, so that what is measured is the system's recovery, not the test's.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)]

SERVING = "SERVING"
NOT_SERVING = "NOT_SERVING"
UNREACHABLE = "UNREACHABLE"
"""What a `HealthRecorder` notes when the server cannot be asked at all (it is not running)."""


@dataclass(frozen=True)
class Attempt:
    """One call of one request: when it ran and how it ended."""

    request_id: str
    started: float
    ended: float
    code: grpc.StatusCode
    reason: str = ""
    """The ErrorInfo reason of a failure (`UNKNOWN` when the failure carried none)."""
    message: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    """The ErrorInfo metadata of a failure."""


@dataclass
class EarnLoad:
    """Clients posting points to a set of accounts through the gateway, each request retried with the
    same `request_id` (short, growing back-off) until acknowledged or out of attempts."""

    stub: LoyaltyServiceStub
    """On a channel that carries the credentials of a caller who may post points."""
    accounts: Sequence[str]
    clients: int = 16
    max_requests_per_client: int = 400
    max_attempts_per_request: int = 120
    max_seconds_per_request: float = 45.0
    call_timeout_seconds: float = 15.0
    """Longer than any wait of the service (statement, pool and connect timeouts), so that a failure
    is the service's answer, not the client giving up."""
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged: dict[str, loyalty_pb2.LedgerEntry] = field(default_factory=dict)
    """The entry each acknowledged request got, by request id."""
    accounts_by_request: dict[str, str] = field(default_factory=dict)
    abandoned: list[str] = field(default_factory=list)
    """Requests that ran out of attempts unacknowledged."""
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _clients: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        """Starts the clients."""
        self._clients = [asyncio.create_task(self._client(number)) for number in range(self.clients)]

    async def stop(self) -> None:
        """Lets every client finish the request it is on (acknowledged or out of attempts), then ends;
        a client still busy past a request's longest time is cancelled, its request left unanswered."""
        self._stopping.set()
        _, busy = await asyncio.wait(self._clients, timeout=self.max_seconds_per_request + self.call_timeout_seconds)
        for client in busy:
            client.cancel()
        await asyncio.gather(*self._clients, return_exceptions=bool(busy))

    def first_attempts(self) -> dict[str, float]:
        """When each request was first tried."""
        started: dict[str, float] = {}
        for attempt in self.attempts:
            started.setdefault(attempt.request_id, attempt.started)
        return started

    def acknowledged_first_tried_after(self, moment: float) -> int:
        """How many acknowledged requests were first tried after `moment`."""
        return sum(
            1
            for request_id, started in self.first_attempts().items()
            if started > moment and request_id in self.acknowledged
        )

    def failures(self) -> list[Attempt]:
        """Every failed attempt."""
        return [attempt for attempt in self.attempts if attempt.code != grpc.StatusCode.OK]

    async def wait_until(self, condition: Callable[[], bool], *, timeout_seconds: float, what: str) -> None:
        """Returns once `condition()` holds; fails after `timeout_seconds` (or if every client ended)."""
        try:
            async with asyncio.timeout(timeout_seconds):
                while not condition():
                    if all(client.done() for client in self._clients):
                        raise AssertionError(f"the clients ended before {what}")
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"not {what} within {timeout_seconds} s: {self.summary()}") from None

    def summary(self) -> str:
        """Requests, acknowledged, abandoned and failed attempts by code and reason, in one line."""
        by_kind = Counter(f"{attempt.code.name}/{attempt.reason}" for attempt in self.failures())
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(by_kind.items())) or "none"
        return (
            f"{len(self.first_attempts())} requests, {len(self.acknowledged)} acknowledged, "
            f"{len(self.abandoned)} abandoned, {len(self.failures())} failed attempts ({kinds})"
        )

    async def _client(self, number: int) -> None:
        rng = random.Random(number)
        for sequence in range(self.max_requests_per_client):
            if self._stopping.is_set():
                return
            account = self.accounts[(number + sequence) % len(self.accounts)]
            request = loyalty_service_pb2.EarnPointsRequest(
                account=account,
                points=rng.randint(1, 50),
                reason="monthly top-up bonus",
                request_id=f"earn-{number}-{sequence}-{uuid.uuid4().hex[:12]}",
            )
            self.accounts_by_request[request.request_id] = account
            await self._post_until_acknowledged(request, rng)

    async def _post_until_acknowledged(
        self, request: loyalty_service_pb2.EarnPointsRequest, rng: random.Random
    ) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.max_seconds_per_request
        backoff = 0.05
        for _ in range(self.max_attempts_per_request):
            started = loop.time()
            try:
                entry = await self.stub.EarnPoints(request, timeout=self.call_timeout_seconds)
            except grpc.aio.AioRpcError as error:
                failure = from_rpc_error(error)
                self.attempts.append(
                    Attempt(
                        request.request_id,
                        started,
                        loop.time(),
                        error.code(),
                        failure.reason,
                        failure.message,
                        dict(failure.metadata),
                    )
                )
                if loop.time() + backoff > give_up_at:
                    break
                await asyncio.sleep(backoff * rng.uniform(0.5, 1.0))
                backoff = min(backoff * 2, 0.5)
                continue
            self.attempts.append(Attempt(request.request_id, started, loop.time(), grpc.StatusCode.OK))
            self.acknowledged[request.request_id] = entry
            return
        self.abandoned.append(request.request_id)


@dataclass
class HealthRecorder:
    """Follows one service's status on a server with `Watch` and records each change with its time;
    a server that cannot be asked is recorded as UNREACHABLE until it answers again."""

    address: str
    service: str
    changes: list[tuple[float, str]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts following."""
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        """Stops following."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def latest(self) -> str:
        """The status last seen; empty before the first answer."""
        return self.changes[-1][1] if self.changes else ""

    def since(self, moment: float) -> list[str]:
        """The statuses seen after `moment`, in order, starting with the one in force at `moment`."""
        before = [status for when, status in self.changes if when <= moment]
        return before[-1:] + [status for when, status in self.changes if when > moment]

    def not_serving_seconds(self, moment: float, until: float) -> float:
        """How long, between `moment` and `until`, the status was anything but SERVING."""
        in_force = self.since(moment)[:1] or [SERVING]
        spans = [(moment, in_force[0]), *((when, status) for when, status in self.changes if moment < when <= until)]
        ends = [when for when, _ in spans[1:]] + [until]
        return sum(end - start for (start, status), end in zip(spans, ends, strict=True) if status != SERVING)

    def first_outage_after(self, moment: float) -> float | None:
        """When the status first left SERVING after `moment`."""
        return next((when for when, status in self.changes if when > moment and status != SERVING), None)

    async def wait_for(self, status: str, *, timeout_seconds: float) -> None:
        """Returns once the latest status is `status`; fails after `timeout_seconds`."""
        try:
            async with asyncio.timeout(timeout_seconds):
                while self.latest() != status:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(
                f"{self.service} was not {status} within {timeout_seconds} s: {self.changes}"
            ) from None

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        async with grpc.aio.insecure_channel(self.address, options=FAST_RECONNECT) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    # Renewed every so often, so that no call is without a deadline.
                    watch = stub.Watch(health_pb2.HealthCheckRequest(service=self.service), timeout=30)
                    async for answer in watch:
                        self._record(loop.time(), health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                        self._record(loop.time(), UNREACHABLE)
                await asyncio.sleep(0.02)

    def _record(self, when: float, status: str) -> None:
        if status != self.latest():
            self.changes.append((when, status))


async def open_accounts(stub: LoyaltyServiceStub, count: int) -> list[str]:
    """Opens `count` accounts for new customers; their names."""
    names = []
    for _ in range(count):
        account = await stub.OpenAccount(
            loyalty_service_pb2.OpenAccountRequest(
                customer=f"customers/{uuid.uuid4()}", request_id=f"open-{uuid.uuid4().hex}"
            ),
            timeout=10,
        )
        names.append(account.name)
    return names


@dataclass(frozen=True)
class RecordedEntry:
    """What the ledger holds for one request id."""

    account: str
    entries: int
    points: int
    numbers: tuple[int, ...]


async def ledger_by_request(engine: AsyncEngine, request_ids: Sequence[str]) -> dict[str, RecordedEntry]:
    """The ledger entries written for each of `request_ids` (those with none are left out)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT request_id, min(account_id::text) AS account, count(*) AS entries, sum(points) AS points, "
                "array_agg(entry ORDER BY entry) AS numbers FROM ledger_entries "
                "WHERE request_id = ANY(:ids) GROUP BY request_id"
            ),
            {"ids": list(request_ids)},
        )
        return {
            row.request_id: RecordedEntry(f"accounts/{row.account}", row.entries, row.points, tuple(row.numbers))
            for row in rows
        }


async def accounts_state(engine: AsyncEngine, accounts: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each account's balance and how many ledger entries it has."""
    ids = [name.removeprefix("accounts/") for name in accounts]
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT a.id::text AS id, a.balance, (SELECT count(*) FROM ledger_entries e WHERE e.account_id = a.id) "
                "AS entries FROM accounts a WHERE a.id::text = ANY(:ids)"
            ),
            {"ids": ids},
        )
        return {f"accounts/{row.id}": (row.balance, row.entries) for row in rows}


def postmaster_socket_dir(data_dir: Path) -> str:
    """The unix socket folder the server on `data_dir` listens in (line 5 of its postmaster.pid)."""
    return (data_dir / "postmaster.pid").read_text().splitlines()[4]


def restart_postgres_fast(data_dir: Path) -> None:
    """`pg_ctl restart -m fast`: sessions are ended at once, the server stops cleanly and starts again."""
    _pg_ctl(data_dir, "restart", "--mode=fast", "--wait", "--log=log")


def stop_postgres(data_dir: Path) -> None:
    """`pg_ctl stop -m fast` on `data_dir`, whichever postmaster runs there now; nothing if none does."""
    if (data_dir / "postmaster.pid").exists():
        _pg_ctl(data_dir, "stop", "--mode=fast", "--wait")


def kill_postmaster(data_dir: Path) -> None:
    """SIGKILLs the postmaster on `data_dir` (the pid in its postmaster.pid) and waits, bounded, until
    nothing of that server is left: a new one refuses to start while orphaned backends hold the old
    one's shared memory, or while the old pid exists at all (a zombie not yet reaped included)."""
    pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (left := _server_processes(data_dir)) or psutil.pid_exists(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"PostgreSQL processes outlived their killed postmaster {pid}: {left}")
        time.sleep(0.05)


def start_postgres(data_dir: Path, socket_dir: str) -> None:
    """`pg_ctl start` on `data_dir` as the embedded server runs: no TCP, a unix socket in `socket_dir`
    (after a kill, with crash recovery)."""
    _pg_ctl(data_dir, "start", "--wait", "--timeout=60", "--log=log", f"--options=-h '' -k '{socket_dir}'")


def _server_processes(data_dir: Path) -> list[psutil.Process]:
    """The live processes of a server on `data_dir`: postgres processes working in that folder
    (backends forked a moment before the kill included, whoever their parent is now)."""
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if (
                process.info["name"] == "postgres"
                and process.status() != psutil.STATUS_ZOMBIE
                and Path(process.cwd()) == data_dir.resolve()
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _pg_ctl(data_dir: Path, *arguments: str) -> None:
    """The embedded package's pg_ctl on `data_dir`, run inside it (relative paths are the folder's) as
    its owner, since PostgreSQL refuses to run as root. `runuser` switches the user, not subprocess'
    `user=`: that makes Python fork() instead of vfork(), and a child forked while gRPC threads are
    busy in this process crashes at times (SIGSEGV) in gRPC's fork handlers before it runs pg_ctl."""
    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), f"--pgdata={data_dir}", *arguments]
    if os.geteuid() == 0:
        command = ["runuser", "-u", pwd.getpwuid(data_dir.stat().st_uid).pw_name, "--", *command]
    # A file, not a pipe: a server that pg_ctl starts would hold a pipe open and the wait never end.
    with tempfile.TemporaryFile() as output:
        completed = subprocess.run(
            command,
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=90,
            check=False,
        )
        output.seek(0)
        printed = output.read().decode(errors="replace")
    if completed.returncode != 0:
        raise AssertionError(f"pg_ctl {' '.join(arguments)} on {data_dir} failed ({completed.returncode}):\n{printed}")


@dataclass(frozen=True)
class FaultRun:
    """What a fault under load left behind: the load's record and the health changes around it."""

    load: EarnLoad
    health: HealthRecorder
    fault_time: float
    """When the fault was injected (event loop time)."""
    end_time: float
    """When the load stopped."""

    def first_success_after_outage(self) -> float | None:
        """Seconds from the fault to the first acknowledged attempt begun after the outage showed."""
        failures_after = [a.started for a in self.load.failures() if a.started >= self.fault_time]
        outage_health = self.health.first_outage_after(self.fault_time)
        signs = [*failures_after[:1], *([outage_health] if outage_health is not None else [])]
        if not signs:
            return None
        outage = min(signs)
        ended = [a.ended for a in self.load.attempts if a.code == grpc.StatusCode.OK and a.started >= outage]
        return min(ended) - self.fault_time if ended else None

    def figures(self, scenario: str) -> str:
        """The run's figures in two lines."""
        recovery = self.first_success_after_outage()
        recovered = "never" if recovery is None else f"{recovery:.2f} s"
        down = self.health.not_serving_seconds(self.fault_time, self.end_time)
        return (
            f"{scenario}: {self.load.summary()}\n"
            f"  fault -> first success after it: {recovered}; health not SERVING for {down:.2f} s "
            f"({' -> '.join(self.health.since(self.fault_time))})"
        )


async def fault_under_load(
    load: EarnLoad,
    health: HealthRecorder,
    fault: Callable[[], Awaitable[None]],
    *,
    warm_up_requests: int = 32,
    requests_after_fault: int = 32,
) -> FaultRun:
    """Runs `load`, injects `fault` once it has warmed up, keeps it running until requests first tried
    after the fault are acknowledged and health is SERVING again, then stops it. Every wait is bounded
    (the fault bounds its own)."""
    loop = asyncio.get_running_loop()
    health.start()
    try:
        await health.wait_for(SERVING, timeout_seconds=20)
        load.start()
        try:
            await load.wait_until(
                lambda: len(load.acknowledged) >= warm_up_requests, timeout_seconds=30, what="warmed up"
            )
            fault_time = loop.time()
            await fault()
            over = loop.time()
            await load.wait_until(
                lambda: load.acknowledged_first_tried_after(over) >= requests_after_fault,
                timeout_seconds=45,
                what="serving again after the fault",
            )
            await health.wait_for(SERVING, timeout_seconds=20)
        finally:
            await load.stop()
        return FaultRun(load, health, fault_time, loop.time())
    finally:
        await health.stop()
