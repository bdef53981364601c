"""Loyalty ledger throughput and latency, directly and through the gateway, beside pgbench.

Sets up a temporary embedded PostgreSQL, starts the loyalty service and the gateway as their own
processes on 127.0.0.1, opens accounts and funds them, then measures EarnPoints and RedeemPoints
at several concurrencies: spread over many accounts, and all on one hot account. In the same run
and on the same server, pgbench runs the equivalent bare SQL transaction (update a balance, insert
an entry) with the same client counts. Every phase is bounded in requests and in time; nothing is
asserted. Prints a table and writes it as JSON to `.data/bench/loyalty.json`.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import grpc

from chassis.settings import Environment
from crm.loyalty.v1 import loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty.app import SERVICE_NAME, migrate_loyalty_database
from services.loyalty.settings import LoyaltySettings
from tests.processes import ServiceProcess, free_port, start_process, wait_until_serving
from tools.postgres import POSTGRES_BIN_PATH, open_cluster

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS = REPOSITORY / ".data" / "bench" / "loyalty.json"
CALL_TIMEOUT_SECONDS = 30.0
SEED_POINTS = 10_000_000

_PGBENCH_SCHEMA = """
CREATE TABLE bench_accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE bench_entries (
    account_id int NOT NULL, entry bigserial, points bigint NOT NULL, create_time timestamptz NOT NULL,
    PRIMARY KEY (account_id, entry)
);
INSERT INTO bench_accounts SELECT n, 10000000 FROM generate_series(1, {accounts}) AS n;
"""
# The bare transaction a posting needs: lock and move the balance, append the entry.
_PGBENCH_SCRIPT = """
\\set aid {choice}
BEGIN;
UPDATE bench_accounts SET balance = balance + {sign}1 WHERE id = :aid RETURNING balance;
INSERT INTO bench_entries (account_id, points, create_time) VALUES (:aid, {sign}1, now());
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
    """spread or hot."""
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def drive(
    make_call: Callable[[int], object], *, concurrency: int, max_requests: int, max_seconds: float
) -> tuple[int, int, float, list[float]]:
    """Keeps `concurrency` calls in flight until `max_requests` are sent or `max_seconds` pass.
    Returns (completed, failed, seconds, latencies in ms)."""
    sent = 0
    errors = 0
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker() -> None:
        nonlocal sent, errors
        while sent < max_requests and time.perf_counter() < deadline:
            number = sent
            sent += 1
            began = time.perf_counter()
            try:
                await make_call(number)  # type: ignore[misc]
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), errors, time.perf_counter() - started, latencies


async def open_accounts(stub: LoyaltyServiceStub, count: int) -> list[str]:
    """Opens and funds `count` accounts."""
    accounts: list[str] = []

    async def one(_: int) -> None:
        account = await stub.OpenAccount(
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

    await drive(one, concurrency=16, max_requests=count, max_seconds=600)
    return accounts


async def measure_service(
    path: str, target: str, accounts: list[str], concurrencies: list[int], max_requests: int, max_seconds: float
) -> list[Phase]:
    """Earn and redeem phases against one target (the service itself or the gateway)."""
    phases: list[Phase] = []
    rng = random.Random(5)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = LoyaltyServiceStub(channel)
        for operation in ("earn", "redeem"):
            for shape in ("spread", "hot"):
                for concurrency in concurrencies:

                    def call(_: int, operation: str = operation, shape: str = shape) -> object:
                        account = accounts[0] if shape == "hot" else rng.choice(accounts)
                        if operation == "earn":
                            return stub.EarnPoints(
                                loyalty_service_pb2.EarnPointsRequest(
                                    account=account, points=10, reason="usage", request_id=str(uuid.uuid4())
                                ),
                                timeout=CALL_TIMEOUT_SECONDS,
                            )
                        return stub.RedeemPoints(
                            loyalty_service_pb2.RedeemPointsRequest(
                                account=account, points=10, reason="voucher", request_id=str(uuid.uuid4())
                            ),
                            timeout=CALL_TIMEOUT_SECONDS,
                        )

                    done, errors, seconds, latencies = await drive(
                        call, concurrency=concurrency, max_requests=max_requests, max_seconds=max_seconds
                    )
                    phase = Phase(
                        path,
                        operation,
                        shape,
                        concurrency,
                        done,
                        errors,
                        seconds,
                        percentile(latencies, 0.5),
                        percentile(latencies, 0.99),
                    )
                    print(_row(phase, None), flush=True)
                    phases.append(phase)
    return phases


def measure_pgbench(url: str, accounts: int, concurrencies: list[int], seconds: float, workspace: Path) -> list[Phase]:
    """The bare SQL transaction at the same client counts, with per-transaction latencies."""
    phases: list[Phase] = []
    for operation, sign in (("earn", ""), ("redeem", "-")):
        for shape, choice in (("spread", f"random(1, {accounts})"), ("hot", "1")):
            script = workspace / f"{operation}-{shape}.sql"
            script.write_text(_PGBENCH_SCRIPT.format(choice=choice, sign=sign))
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
                completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
                elapsed = time.perf_counter() - started
                if completed.returncode != 0:
                    raise RuntimeError(f"pgbench failed: {completed.stderr.strip()}")
                latencies: list[float] = []
                for log in logs.iterdir():
                    for line in log.read_text().splitlines():
                        fields = line.split()
                        latencies.append(int(fields[2]) / 1000)
                measured = _pgbench_seconds(completed.stdout) or elapsed
                phase = Phase(
                    "pgbench",
                    operation,
                    shape,
                    concurrency,
                    len(latencies),
                    0,
                    measured,
                    percentile(latencies, 0.5),
                    percentile(latencies, 0.99),
                )
                print(_row(phase, None), flush=True)
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


def _row(phase: Phase, baseline: Phase | None) -> str:
    ratio = f"{phase.per_second / baseline.per_second:6.2f}" if baseline and baseline.per_second else "     -"
    return (
        f"  {phase.path:8} {phase.operation:6} {phase.accounts:6} c={phase.concurrency:<3} "
        f"{phase.requests:6,} req {phase.errors:4} err {phase.per_second:9,.0f}/s "
        f"p50 {phase.p50_ms:7.2f} ms  p99 {phase.p99_ms:7.2f} ms  vs pgbench {ratio}"
    )


def report(phases: list[Phase]) -> str:
    """The table, each service phase beside the pgbench phase of the same shape."""
    baselines = {(p.operation, p.accounts, p.concurrency): p for p in phases if p.path == "pgbench"}
    lines = ["loyalty ledger (requests/s, latency; ratio = throughput / pgbench's for the same shape and clients)"]
    for phase in phases:
        baseline = (
            None if phase.path == "pgbench" else baselines.get((phase.operation, phase.accounts, phase.concurrency))
        )
        lines.append(_row(phase, baseline))
    return "\n".join(lines)


async def run(accounts: int, concurrencies: list[int], max_requests: int, max_seconds: float) -> list[Phase]:
    """One full benchmark run."""
    workspace = Path(tempfile.mkdtemp(prefix="crm-loyalty-bench-"))
    cluster = open_cluster(workspace / "postgres", temporary=True)
    processes: list[ServiceProcess] = []
    try:
        url = cluster.ensure_database(f"bench_loyalty_{uuid.uuid4().hex[:8]}")
        migrate_loyalty_database(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": url})))
        loyalty_address, gateway_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        quiet = {"LOG_LEVEL": "WARNING"}
        processes.append(
            start_process(
                "loyalty-bench",
                "services.loyalty",
                {**quiet, "LOYALTY_DATABASE_URL": url, "LOYALTY_GRPC_ADDRESS": loyalty_address},
                loyalty_address,
                workspace,
            )
        )
        processes.append(
            start_process(
                "gateway-bench",
                "gateway",
                {
                    **quiet,
                    "GATEWAY_GRPC_ADDRESS": gateway_address,
                    "GATEWAY_LOYALTY_TARGET": loyalty_address,
                    "GATEWAY_CUSTOMER_TARGET": f"127.0.0.1:{free_port()}",
                },
                gateway_address,
                workspace,
            )
        )
        await wait_until_serving(processes[0], SERVICE_NAME)
        await wait_until_serving(processes[1], SERVICE_NAME)
        async with grpc.aio.insecure_channel(loyalty_address) as channel:
            print(f"opening and funding {accounts:,} accounts", flush=True)
            names = await open_accounts(LoyaltyServiceStub(channel), accounts)
        phases = await measure_service("direct", loyalty_address, names, concurrencies, max_requests, max_seconds)
        phases += await measure_service("gateway", gateway_address, names, concurrencies, max_requests, max_seconds)
        print("pgbench, same server, same shapes", flush=True)
        pgbench_url = cluster.ensure_database("bench_pgbench")
        connection = await asyncpg.connect(pgbench_url.replace("postgresql://postgres:@/", "postgresql://postgres@/"))
        try:
            await connection.execute(_PGBENCH_SCHEMA.format(accounts=accounts))
        finally:
            await connection.close()
        phases += await asyncio.to_thread(measure_pgbench, pgbench_url, accounts, concurrencies, max_seconds, workspace)
        return phases
    finally:
        for process in reversed(processes):
            await asyncio.to_thread(process.stop)
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark, prints the table and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--requests", type=int, default=3_000, help="most requests per phase")
    parser.add_argument("--seconds", type=float, default=6.0, help="longest phase")
    arguments = parser.parse_args(argv)
    phases = asyncio.run(run(arguments.accounts, arguments.concurrency, arguments.requests, arguments.seconds))
    print(report(phases))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([{**asdict(p), "per_second": p.per_second} for p in phases], indent=2))
    print(f"written to {RESULTS.relative_to(REPOSITORY)}")
    summary = [p.p50_ms for p in phases if p.path == "direct"]
    if summary:
        print(f"median of direct p50 latencies: {statistics.median(summary):.2f} ms")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.exit(main())
