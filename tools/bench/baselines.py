"""The ceilings every request/response phase is measured against, in the same run on the same machine.

A bare grpc.aio echo server in a process of its own (`tools.bench.echo_server`), and the same echo
behind a bare forwarding hop in another (`tools.bench.forwarding_hop`): no interceptors, no telemetry,
bytes in and bytes out. The client sends a fresh EarnPointsRequest per call, the size of a posting,
with the driver, channel and concurrencies of the service phases (`tools.bench.calls`). What the echo
reaches is what any service here could at best; the echo through the hop, what any gateway could.
Standalone, `python -m tools.bench baselines` prints them and writes `.data/bench/baselines.json`.
"""

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

from crm.loyalty.v1.loyalty_service_pb2 import EarnPointsRequest
from tools.bench.bare_server import METHOD_PATH
from tools.bench.calls import (
    CALL_TIMEOUT_SECONDS,
    CONCURRENCIES,
    FULL_LIMITS,
    QUICK_LIMITS,
    PhaseLimits,
    drive,
)
from tools.bench.sizes import chosen_sizes

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS = REPOSITORY / ".data" / "bench" / "baselines.json"
ECHO = "echo"
"""The path of phases against the bare echo server."""
ECHO_VIA_HOP = "echo via hop"
"""The path of phases against the echo through the bare forwarding hop."""
ECHO_OF_PATH = {"direct": ECHO, "gateway": ECHO_VIA_HOP}
"""The echo a service phase is held against by its path: a service at best answers like the bare echo,
a gateway like the bare hop."""
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
# Any account name: the echo does not look at it, it only has to be as long as a real one.
_ECHOED_ACCOUNT = f"accounts/{uuid.UUID(int=1)}"


@dataclass(frozen=True)
class EchoPhase:
    """One measured concurrency against the echo, directly or through the hop."""

    path: str
    """ECHO or ECHO_VIA_HOP."""
    concurrency: int
    """Calls in flight."""
    requests: int
    """Calls that completed."""
    seconds: float
    """How long the phase ran."""
    p50_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    """Failed calls by gRPC status code."""

    @property
    def per_second(self) -> float:
        """Completed calls per second."""
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Baselines:
    """The echo phases of one run."""

    payload_bytes: int
    """Size of the request (and of the answer) each call carried."""
    phases: list[EchoPhase]

    def at(self, path: str, concurrency: int) -> EchoPhase | None:
        """The phase of `path` at `concurrency`; None if it was not measured."""
        return next((p for p in self.phases if p.path == path and p.concurrency == concurrency), None)

    def reference(self, service_path: str, concurrency: int) -> EchoPhase | None:
        """The echo phase a service phase of `service_path` (direct or gateway) at `concurrency` is
        held against; None for any other path."""
        echo_path = ECHO_OF_PATH.get(service_path)
        return self.at(echo_path, concurrency) if echo_path else None

    def as_json(self) -> dict[str, object]:
        """The phases with their throughput."""
        phases = [{**asdict(p), "per_second": p.per_second} for p in self.phases]
        return {"payload_bytes": self.payload_bytes, "phases": phases}


@dataclass
class BareProcess:
    """A bare server of this package running as a child process."""

    name: str
    process: asyncio.subprocess.Process
    address: str
    """`127.0.0.1:<port>` it printed once serving."""
    log_path: Path
    """Where its stderr goes."""

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within STOP_TIMEOUT_SECONDS."""
        if self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def start_bare_process(name: str, module: str, arguments: list[str], workspace: Path) -> BareProcess:
    """Runs `python -m module arguments...` and returns once it printed the port it listens on."""
    log_path = workspace / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *arguments,
            cwd=REPOSITORY,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    started = BareProcess(name, process, "", log_path)
    assert process.stdout is not None, "spawned with a pipe"
    try:
        printed = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_SECONDS)
    except TimeoutError:
        printed = b""
    if not printed.strip().isdigit():
        await started.stop()
        waited = f"{START_TIMEOUT_SECONDS:.0f} s"
        raise RuntimeError(f"{name} did not print its port within {waited}:\n{log_path.read_text(errors='replace')}")
    started.address = f"127.0.0.1:{int(printed)}"
    return started


@dataclass(frozen=True)
class EchoTargets:
    """Where the echo is reached, directly and through the hop."""

    echo: str
    via_hop: str


@asynccontextmanager
async def echo_servers(workspace: Path) -> AsyncIterator[EchoTargets]:
    """Starts the echo server and the forwarding hop in front of it; stops both when the block ends."""
    echo = await start_bare_process("echo-server", "tools.bench.echo_server", [], workspace)
    try:
        hop = await start_bare_process("forwarding-hop", "tools.bench.forwarding_hop", [echo.address], workspace)
        try:
            yield EchoTargets(echo.address, hop.address)
        finally:
            await hop.stop()
    finally:
        await echo.stop()


def echoed_posting() -> EarnPointsRequest:
    """What each echo call carries: a posting as the service phases send it, with a fresh request id."""
    return EarnPointsRequest(account=_ECHOED_ACCOUNT, points=10, reason="usage", request_id=str(uuid.uuid4()))


def echo_call(channel: grpc.aio.Channel) -> Callable[[], Awaitable[EarnPointsRequest]]:
    """A factory of echo calls, each encoding a fresh posting and decoding the answer as a stub would."""
    echo = channel.unary_unary(
        METHOD_PATH,
        request_serializer=EarnPointsRequest.SerializeToString,
        response_deserializer=EarnPointsRequest.FromString,
    )

    def call() -> Awaitable[EarnPointsRequest]:
        return echo(echoed_posting(), timeout=CALL_TIMEOUT_SECONDS)

    return call


async def measure_path(path: str, target: str, concurrencies: list[int], limits: PhaseLimits) -> list[EchoPhase]:
    """The echo phases at each concurrency against one target, one row printed per phase."""
    phases: list[EchoPhase] = []
    async with grpc.aio.insecure_channel(target) as channel:
        # Connected first, as in the service phases: no phase pays for the connection.
        await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_SECONDS)
        call = echo_call(channel)
        for concurrency in concurrencies:
            driven = await drive(call, concurrency=concurrency, limits=limits)
            phase = EchoPhase(
                path,
                concurrency,
                len(driven.latencies_ms),
                driven.seconds,
                driven.p50_ms,
                driven.p99_ms,
                dict(driven.errors),
            )
            print(_row(phase), flush=True)
            phases.append(phase)
    return phases


async def measure_baselines(workspace: Path, concurrencies: list[int], limits: PhaseLimits) -> Baselines:
    """The echo and the echo through the hop at each concurrency, the processes stopped afterwards."""
    print(f"echo baselines ({ECHO!r} and {ECHO_VIA_HOP!r})", flush=True)
    async with echo_servers(workspace) as targets:
        phases = await measure_path(ECHO, targets.echo, concurrencies, limits)
        phases += await measure_path(ECHO_VIA_HOP, targets.via_hop, concurrencies, limits)
    return Baselines(echoed_posting().ByteSize(), phases)


_HEADER = f"  {'path':12} {'in flight':>9} {'requests':>8} {'errors':>6} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7}"


def _row(phase: EchoPhase) -> str:
    return (
        f"  {phase.path:12} {phase.concurrency:9} {phase.requests:8,} {sum(phase.errors.values()):6} "
        f"{phase.per_second:7,.0f} {phase.p50_ms:7.2f} {phase.p99_ms:7.2f}"
    )


def report(baselines: Baselines) -> str:
    """The table of echo phases."""
    lines = [
        f"baselines: a {baselines.payload_bytes}-byte EarnPointsRequest echoed by a bare grpc.aio server "
        f"({ECHO}) and through a bare forwarding hop ({ECHO_VIA_HOP})",
        _HEADER,
        *(_row(phase) for phase in baselines.phases),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class BaselineSizes:
    """How many phases a standalone run has, and how long each runs."""

    concurrency: list[int]
    requests: int
    seconds: float


FULL = BaselineSizes(list(CONCURRENCIES), FULL_LIMITS.max_requests, FULL_LIMITS.max_seconds)
QUICK = BaselineSizes(list(CONCURRENCIES), QUICK_LIMITS.max_requests, QUICK_LIMITS.max_seconds)


def bench(argv: list[str] | None = None) -> Baselines:
    """Measures the baselines alone, prints them and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", help=f"calls in flight (default {FULL.concurrency})")
    parser.add_argument("--requests", type=int, help=f"most requests per phase (default {FULL.requests:,})")
    parser.add_argument("--seconds", type=float, help=f"longest phase (default {FULL.seconds:g})")
    sizes = chosen_sizes(parser, argv, full=FULL, quick=QUICK)
    if min(sizes.concurrency) < 1 or sizes.requests < 1 or sizes.seconds <= 0:
        parser.error("concurrency, requests and seconds must be positive")
    workspace = Path(tempfile.mkdtemp(prefix="crm-baselines-bench-"))
    try:
        limits = PhaseLimits(sizes.requests, sizes.seconds)
        baselines = asyncio.run(measure_baselines(workspace, sizes.concurrency, limits))
    except BaseException:
        print(f"echo and hop logs kept in {workspace}", file=sys.stderr)
        raise
    shutil.rmtree(workspace, ignore_errors=True)
    print(report(baselines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(baselines.as_json(), indent=2))
    print(f"written to {RESULTS.relative_to(REPOSITORY)}")
    return baselines


def main(argv: list[str] | None = None) -> int:
    """Runs the baselines alone."""
    bench(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
