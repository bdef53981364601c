"""Loyalty ledger throughput and latency, directly and through the gateway, beside pgbench.

Sets up a temporary embedded PostgreSQL, starts the loyalty service and the gateway as their own
processes on 127.0.0.1, opens accounts and funds them, then measures EarnPoints and RedeemPoints
at several concurrencies: spread over many accounts, and all on one hot account. The gateway runs as
deployed, with credentials made for the run and its own migrated database on the same server (it
audits every posting there); it is called as a back-office employee with a signed token over TLS,
its rate limit per employee raised out of the way so that the load is not throttled. In the same run
and on the same server, pgbench runs the equivalent bare SQL transaction (update a balance, insert
an entry) with the same client counts, and the echo baselines (`tools.bench.baselines`) run with the
same client and concurrencies: each direct phase is shown beside the bare echo, each gateway phase
beside the echo through a bare forwarding hop and beside the direct phase. While each phase runs, the
sessions waiting on a lock are sampled from `pg_stat_activity`. The service processes' idle memory
is read before the first call. Every phase is bounded in requests and in time; nothing is asserted.
Prints a table and writes it as JSON to `.data/bench/loyalty.json`.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import grpc

from chassis.settings import Environment
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty.app import LOYALTY
from services.loyalty.settings import LoyaltySettings
from tests.processes import ANY_PORT, ServiceProcess, start_process, wait_until_serving
from tests.support import LOYALTY_SERVICE as SERVICE_NAME
from tools.bench.baselines import ECHO, ECHO_VIA_HOP, Baselines, EchoPhase, measure_baselines
from tools.bench.baselines import report as baselines_report
from tools.bench.calls import (
    CALL_TIMEOUT_SECONDS,
    CONCURRENCIES,
    FULL_LIMITS,
    QUICK_LIMITS,
    PhaseLimits,
    drive,
    percentile,
)
from tools.bench.idle_memory import IdleMemory, idle_memory
from tools.bench.idle_memory import report as idle_memory_report
from tools.bench.measured_gateway import start_gateway
from tools.bench.sizes import chosen_sizes
from tools.postgres import POSTGRES_BIN_PATH, open_cluster

if TYPE_CHECKING:
    # mypy-protobuf's type of the stub on an asyncio channel; it exists for type checkers only.
    from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceAsyncStub

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS = REPOSITORY / ".data" / "bench" / "loyalty.json"
SETUP_SECONDS = 300.0
SEED_POINTS = 10_000_000
POSTING_POINTS = 10
LOCK_SAMPLE_SECONDS = 0.05
PGBENCH_DATABASE = "bench_pgbench"
CALLER = "loyalty-bench"
"""The back-office employee the gateway phases call as: the policy lets back office post points."""
CALLER_ROLES = ("back-office",)

_LOCK_WAITS = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'"
_PGBENCH_SCHEMA = """
CREATE TABLE bench_accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE bench_entries (
    account_id int NOT NULL, entry bigserial, points bigint NOT NULL, create_time timestamptz NOT NULL,
    PRIMARY KEY (account_id, entry)
);
INSERT INTO bench_accounts SELECT n, {seed} FROM generate_series(1, {accounts}) AS n;
ANALYZE;
"""
# The bare transaction a posting needs: lock and move the balance, append the entry.
_PGBENCH_SCRIPT = """
\\set aid {choice}
BEGIN;
UPDATE bench_accounts SET balance = balance + {sign}{points} WHERE id = :aid RETURNING balance;
INSERT INTO bench_entries (account_id, points, create_time) VALUES (:aid, {sign}{points}, now());
END;
"""


@dataclass(frozen=True)
class Phase:
    """One measured combination."""

    path: str
    """direct, gateway or pgbench."""
    operation: str
    """earn or redeem."""
    accounts: str
    """spread (a random account per request) or hot (every request on one account)."""
    concurrency: int
    """Calls in flight (pgbench: clients)."""
    requests: int
    """Calls (pgbench: transactions) that completed."""
    seconds: float
    """How long the phase ran."""
    p50_ms: float
    p99_ms: float
    lock_waits: float
    """Mean number of sessions on the phase's database waiting on a lock, sampled while it ran."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed calls by gRPC status code."""

    @property
    def per_second(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


@asynccontextmanager
async def sampled_lock_waits(admin: asyncpg.Connection, database: str) -> AsyncIterator[list[int]]:
    """Counts the sessions on `database` waiting on a lock, every few milliseconds until the block ends."""
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(await admin.fetchval(_LOCK_WAITS, database, timeout=CALL_TIMEOUT_SECONDS))
            await asyncio.sleep(LOCK_SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        sampler.cancel()
        with suppress(asyncio.CancelledError):
            await sampler


def _mean(samples: list[int]) -> float:
    return sum(samples) / len(samples) if samples else 0.0


async def open_accounts(stub: "LoyaltyServiceAsyncStub", count: int) -> list[str]:
    """Opens `count` accounts and funds each with SEED_POINTS."""
    accounts: list[str] = []

    async def open_and_fund() -> None:
        account: loyalty_pb2.Account = await stub.OpenAccount(
            loyalty_service_pb2.OpenAccountRequest(customer=f"customers/{uuid.uuid4()}", request_id=str(uuid.uuid4())),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        await stub.EarnPoints(
            loyalty_service_pb2.EarnPointsRequest(
                account=account.name, points=SEED_POINTS, reason="benchmark funds", request_id=str(uuid.uuid4())
            ),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        accounts.append(account.name)

    driven = await drive(open_and_fund, concurrency=16, limits=PhaseLimits(count, SETUP_SECONDS))
    if len(accounts) < count:
        raise RuntimeError(f"opened and funded {len(accounts)} of {count} accounts; failures: {dict(driven.errors)}")
    return accounts


def posting_call(
    stub: "LoyaltyServiceAsyncStub",
    operation: str,
    pick_account: Callable[[], str],
    metadata: tuple[tuple[str, str], ...] = (),
) -> Callable[[], Awaitable[loyalty_pb2.LedgerEntry]]:
    """A factory of EarnPoints or RedeemPoints calls, each with a fresh request id and `metadata`."""

    def call() -> Awaitable[loyalty_pb2.LedgerEntry]:
        if operation == "earn":
            return stub.EarnPoints(
                loyalty_service_pb2.EarnPointsRequest(
                    account=pick_account(), points=POSTING_POINTS, reason="usage", request_id=str(uuid.uuid4())
                ),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=metadata,
            )
        return stub.RedeemPoints(
            loyalty_service_pb2.RedeemPointsRequest(
                account=pick_account(), points=POSTING_POINTS, reason="voucher", request_id=str(uuid.uuid4())
            ),
            timeout=CALL_TIMEOUT_SECONDS,
            metadata=metadata,
        )

    return call


async def measure_service(
    path: str,
    channel: grpc.aio.Channel,
    accounts: list[str],
    concurrencies: list[int],
    limits: PhaseLimits,
    admin: asyncpg.Connection,
    database: str,
    metadata: tuple[tuple[str, str], ...] = (),
) -> list[Phase]:
    """Earn and redeem phases over one channel (to the service itself or to the gateway), each call
    with `metadata`; closes the channel."""
    phases: list[Phase] = []
    rng = random.Random(5)
    pickers = {"spread": lambda: rng.choice(accounts), "hot": lambda: accounts[0]}
    async with channel:
        # Connected first, as in the echo phases: no phase pays for the connection.
        await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_SECONDS)
        stub = LoyaltyServiceStub(channel)
        for operation in ("earn", "redeem"):
            for shape, pick_account in pickers.items():
                call = posting_call(stub, operation, pick_account, metadata)
                for concurrency in concurrencies:
                    async with sampled_lock_waits(admin, database) as samples:
                        driven = await drive(call, concurrency=concurrency, limits=limits)
                    phase = Phase(
                        path,
                        operation,
                        shape,
                        concurrency,
                        len(driven.latencies_ms),
                        driven.seconds,
                        driven.p50_ms,
                        driven.p99_ms,
                        _mean(samples),
                        dict(driven.errors),
                    )
                    print(_row(phase, PhaseRatios()), flush=True)
                    phases.append(phase)
    return phases


async def measure_pgbench(
    url: str, accounts: int, concurrencies: list[int], seconds: float, workspace: Path, admin: asyncpg.Connection
) -> list[Phase]:
    """The bare SQL transaction at the same client counts, latencies from pgbench's per-transaction log."""
    phases: list[Phase] = []
    for operation, sign in (("earn", ""), ("redeem", "-")):
        for shape, choice in (("spread", f"random(1, {accounts})"), ("hot", "1")):
            script = workspace / f"{operation}-{shape}.sql"
            script.write_text(_PGBENCH_SCRIPT.format(choice=choice, sign=sign, points=POSTING_POINTS))
            for concurrency in concurrencies:
                logs = workspace / f"pgbench-{operation}-{shape}-{concurrency}"
                logs.mkdir()
                command = [
                    str(POSTGRES_BIN_PATH / "pgbench"),
                    "--no-vacuum",
                    f"--client={concurrency}",
                    f"--jobs={min(concurrency, 2)}",
                    f"--time={max(1, round(seconds))}",
                    f"--file={script}",
                    "--log",
                    f"--log-prefix={logs / 'tx'}",
                    url,
                ]
                started = time.perf_counter()
                async with sampled_lock_waits(admin, PGBENCH_DATABASE) as samples:
                    completed = await asyncio.to_thread(
                        subprocess.run, command, capture_output=True, text=True, timeout=seconds + 60, check=False
                    )
                elapsed = time.perf_counter() - started
                if completed.returncode != 0:
                    raise RuntimeError(f"pgbench failed: {completed.stderr.strip()}")
                # A log line: client, transaction, latency in microseconds, script, epoch seconds, microseconds.
                latencies = [
                    int(line.split()[2]) / 1000 for log in logs.iterdir() for line in log.read_text().splitlines()
                ]
                phase = Phase(
                    "pgbench",
                    operation,
                    shape,
                    concurrency,
                    len(latencies),
                    _pgbench_seconds(completed.stdout) or elapsed,
                    percentile(latencies, 0.5),
                    percentile(latencies, 0.99),
                    _mean(samples),
                )
                print(_row(phase, PhaseRatios()), flush=True)
                phases.append(phase)
    return phases


def _pgbench_seconds(output: str) -> float | None:
    """The run's duration from pgbench's summary (transactions / tps)."""
    processed = tps = None
    for line in output.splitlines():
        if line.startswith("number of transactions actually processed:"):
            processed = int(line.split(":")[1].split("/")[0])
        if line.startswith("tps ="):
            tps = float(line.split("=")[1].split()[0])
    return processed / tps if processed and tps else None


@dataclass(frozen=True)
class PhaseRatios:
    """A phase's throughput as a share of its references in the same run; None where there is none."""

    of_pgbench: float | None = None
    """Of pgbench's for the same call, accounts and clients."""
    of_echo: float | None = None
    """Of the echo's at the same calls in flight: the bare echo for direct, through the hop for gateway."""
    of_direct: float | None = None
    """Of the direct phase with the same call, accounts and calls in flight (gateway phases only)."""


@dataclass(frozen=True)
class LoyaltyRun:
    """What one run measured."""

    phases: list[Phase]
    """Direct, gateway and pgbench phases."""
    baselines: Baselines
    idle_memory: list[IdleMemory]
    """The loyalty service's and the gateway's, before the first call."""

    def phase(self, path: str, operation: str, accounts: str, concurrency: int) -> Phase | None:
        """The phase measured for that combination; None if it was not."""
        wanted = (path, operation, accounts, concurrency)
        return next((p for p in self.phases if (p.path, p.operation, p.accounts, p.concurrency) == wanted), None)

    def echo_of(self, phase: Phase) -> EchoPhase | None:
        """The echo phase `phase` is held against; None for pgbench."""
        return self.baselines.reference(phase.path, phase.concurrency)

    def ratios(self, phase: Phase) -> PhaseRatios:
        """The phase's throughput as a share of pgbench's, the echo's and (gateway) the direct phase's."""
        if phase.path == "pgbench":
            return PhaseRatios()
        same = (phase.operation, phase.accounts, phase.concurrency)
        direct = self.phase("direct", *same) if phase.path == "gateway" else None
        return PhaseRatios(
            of_pgbench=_share(phase.per_second, self.phase("pgbench", *same)),
            of_echo=_share(phase.per_second, self.echo_of(phase)),
            of_direct=_share(phase.per_second, direct),
        )

    def as_json(self) -> dict[str, object]:
        """The phases with their throughput and ratios, the baselines and the idle memory."""
        phases = [
            {**asdict(phase), "per_second": phase.per_second, **asdict(self.ratios(phase))} for phase in self.phases
        ]
        return {
            "phases": phases,
            "baselines": self.baselines.as_json(),
            "idle_memory": [asdict(m) for m in self.idle_memory],
        }


def _share(per_second: float, reference: Phase | EchoPhase | None) -> float | None:
    return per_second / reference.per_second if reference is not None and reference.per_second else None


_HEADER = (
    f"  {'path':8} {'call':6} {'accounts':8} {'in flight':>9} {'requests':>8} {'errors':>6} {'per s':>7} "
    f"{'p50 ms':>7} {'p99 ms':>7} {'lock waits':>10} {'of pgbench':>10} {'of echo':>7} {'of direct':>9}"
)


def _row(phase: Phase, ratios: PhaseRatios) -> str:
    return (
        f"  {phase.path:8} {phase.operation:6} {phase.accounts:8} {phase.concurrency:9} {phase.requests:8,} "
        f"{sum(phase.errors.values()):6} {phase.per_second:7,.0f} {phase.p50_ms:7.2f} {phase.p99_ms:7.2f} "
        f"{phase.lock_waits:10.2f} {_shown(ratios.of_pgbench, 10)} {_shown(ratios.of_echo, 7)} "
        f"{_shown(ratios.of_direct, 9)}"
    )


def _shown(ratio: float | None, width: int) -> str:
    return f"{'-':>{width}}" if ratio is None else f"{ratio:{width}.2f}"


def report(run: LoyaltyRun) -> str:
    """The table, each service phase beside pgbench, the echo and (gateway) the direct phase."""
    lines = [
        baselines_report(run.baselines),
        idle_memory_report(run.idle_memory),
        "loyalty ledger: throughput and latency per phase; lock waits = mean sessions waiting on a lock;",
        "of pgbench = throughput / pgbench's for the same call, accounts and clients;",
        f"of echo = throughput / the echo's at the same calls in flight ({ECHO} for direct, {ECHO_VIA_HOP} for "
        "gateway);",
        "of direct = throughput / the direct phase's for the same call, accounts and calls in flight",
        _HEADER,
        *(_row(phase, run.ratios(phase)) for phase in run.phases),
    ]
    failed = [p for p in run.phases if p.errors]
    lines += [f"  errors in {p.path} {p.operation} {p.accounts} x{p.concurrency}: {p.errors}" for p in failed]
    return "\n".join(lines)


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql://postgres:@/", "postgresql://postgres@/")


@dataclass(frozen=True)
class LoyaltySizes:
    """How big a run is."""

    accounts: int
    """Funded accounts the spread phases pick from."""
    concurrency: list[int]
    """Calls in flight (pgbench: clients), one phase each."""
    requests: int
    """Most calls per phase."""
    seconds: float
    """Longest phase."""


FULL = LoyaltySizes(1_000, list(CONCURRENCIES), FULL_LIMITS.max_requests, FULL_LIMITS.max_seconds)
QUICK = LoyaltySizes(50, list(CONCURRENCIES), QUICK_LIMITS.max_requests, QUICK_LIMITS.max_seconds)


async def run(sizes: LoyaltySizes) -> LoyaltyRun:
    """One full benchmark run."""
    workspace = Path(tempfile.mkdtemp(prefix="crm-loyalty-bench-"))
    cluster = open_cluster(workspace / "postgres", temporary=True)
    processes: list[ServiceProcess] = []
    admin: asyncpg.Connection | None = None
    finished = False
    try:
        database = f"bench_loyalty_{uuid.uuid4().hex[:8]}"
        url = cluster.ensure_database(database)
        LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": url})))
        quiet = {"LOG_LEVEL": "WARNING"}
        loyalty = start_process(
            "loyalty-bench",
            "services.loyalty",
            {**quiet, "LOYALTY_DATABASE_URL": url, "LOYALTY_GRPC_ADDRESS": ANY_PORT},
            workspace,
        )
        processes.append(loyalty)
        await wait_until_serving(loyalty, SERVICE_NAME)
        # No customer service runs here: the gateway points it at a refused address.
        gateway = await start_gateway(
            cluster, workspace, {"LOYALTY_TARGET": loyalty.address}, serving=[SERVICE_NAME], environment=quiet
        )
        processes.append(gateway.process)
        loyalty_address = loyalty.address
        started = {"loyalty service": loyalty.process.pid, "gateway": gateway.process.process.pid}
        memory = await idle_memory("loyalty benchmark", started)
        admin = await asyncpg.connect(_asyncpg_url(cluster.admin_url), timeout=CALL_TIMEOUT_SECONDS)
        async with grpc.aio.insecure_channel(loyalty_address) as channel:
            print(f"opening and funding {sizes.accounts:,} accounts", flush=True)
            names = await open_accounts(LoyaltyServiceStub(channel), sizes.accounts)
        concurrencies, limits = sizes.concurrency, PhaseLimits(sizes.requests, sizes.seconds)
        baselines = await measure_baselines(workspace, concurrencies, limits)
        direct = grpc.aio.insecure_channel(loyalty_address)
        phases = await measure_service("direct", direct, names, concurrencies, limits, admin, database)
        through_gateway, bearer = gateway.channel(), gateway.employee_metadata(CALLER_ROLES, subject=CALLER)
        phases += await measure_service(
            "gateway", through_gateway, names, concurrencies, limits, admin, database, bearer
        )
        print("pgbench, same server, same shapes", flush=True)
        pgbench_url = cluster.ensure_database(PGBENCH_DATABASE)
        scratch = await asyncpg.connect(_asyncpg_url(pgbench_url), timeout=CALL_TIMEOUT_SECONDS)
        try:
            await scratch.execute(_PGBENCH_SCHEMA.format(accounts=sizes.accounts, seed=SEED_POINTS))
        finally:
            await scratch.close()
        phases += await measure_pgbench(pgbench_url, sizes.accounts, concurrencies, sizes.seconds, workspace, admin)
        finished = True
        return LoyaltyRun(phases, baselines, memory)
    finally:
        if admin is not None:
            await admin.close()
        for process in reversed(processes):
            await asyncio.to_thread(process.stop)
        cluster.stop()
        # The service logs explain a failed run; a finished one needs none of it.
        if finished:
            shutil.rmtree(workspace, ignore_errors=True)
        else:
            print(f"service, echo and pgbench logs kept in {workspace}", file=sys.stderr)


def bench(argv: list[str] | None = None) -> LoyaltyRun:
    """Runs the benchmark, prints the table and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, help=f"funded accounts (default {FULL.accounts:,})")
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"calls in flight (default {FULL.concurrency})")
    parser.add_argument("--requests", type=int, help=f"most requests per phase (default {FULL.requests:,})")
    parser.add_argument("--seconds", type=float, help=f"longest phase (default {FULL.seconds:g})")
    sizes = chosen_sizes(parser, argv, full=FULL, quick=QUICK)
    if sizes.accounts < 1 or min(sizes.concurrency) < 1 or sizes.requests < 1 or sizes.seconds <= 0:
        parser.error("accounts, concurrency, requests and seconds must be positive")
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
