"""How long the whole stack takes from `make run` to every service SERVING, and each server's idle memory.

Runs the launcher (`python -m tools.run`, what `make run` runs once installed) on a private data folder,
so on a fresh embedded PostgreSQL (initdb and migrations included), without demo data and on free
ports; times until every child it starts (every service and the gateway) answers SERVING on the
standard gRPC health check (the gateway's over TLS, verified with the CA the launcher made); reads
each child's memory once idle; stops the launcher with SIGTERM. Then once more on the same data folder,
initialised this time. Prints the figures and writes them to `.data/bench/startup.json`.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.bench.idle_memory import IdleMemory, idle_memory
from tools.bench.idle_memory import report as idle_memory_report
from tools.bench.sizes import chosen_sizes
from tools.local_gateway import DATA_DIR_VARIABLE
from tools.postgres import PostgresError, stop_server
from tools.run import CHILDREN, ChildSpec

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS = REPOSITORY / ".data" / "bench" / "startup.json"
START_TIMEOUT_SECONDS = 180.0
"""Longest the stack may take to serve before the start counts as failed."""
STOP_TIMEOUT_SECONDS = 90.0
"""Longer than the launcher's own bounded stop of every child and of PostgreSQL."""
HEALTH_CHECK_TIMEOUT_SECONDS = 1.0
HEALTH_POLL_SECONDS = 0.05
# The launcher's line once a child answered SERVING: `[run] <name> is serving on <host:port>`.
_SERVING_LINE = re.compile(r"^\[run\] (?P<name>.+) is serving on (?P<address>\S+)$")
# Settings that would point the launcher at someone else's server or services instead of its own.
_POINTED_ELSEWHERE = frozenset(
    {"CRM_POSTGRES_URL", *(spec.database_variable for spec in CHILDREN), *(t for spec in CHILDREN for t in spec.dials)}
)


@dataclass(frozen=True)
class StackStart:
    """One start of the whole stack."""

    data_folder: str
    """"fresh" (PostgreSQL initialised on the way) or "initialised" (started before)."""
    seconds: float
    """From starting the launcher until the last of its children answered SERVING."""
    serving_after: dict[str, float]
    """Seconds from starting the launcher until each child answered SERVING, by the launcher's name."""
    idle_memory: list[IdleMemory]


@dataclass(frozen=True)
class StartupSizes:
    """How many starts a run has."""

    starts: int
    """1: on a fresh data folder; 2: then again on the initialised one."""


FULL = StartupSizes(starts=2)
QUICK = StartupSizes(starts=1)


def launcher_environment(data_dir: Path) -> dict[str, str]:
    """This environment with the launcher's data in `data_dir`, every child on a free port, no demo data,
    and no database or target given from outside."""
    environment = {name: value for name, value in os.environ.items() if name not in _POINTED_ELSEWHERE}
    environment |= {DATA_DIR_VARIABLE: str(data_dir), "CRM_DEMO_CUSTOMERS": "0"}
    environment |= {spec.address_variable: "127.0.0.1:0" for spec in CHILDREN}
    environment |= {listener.variable: "127.0.0.1:0" for spec in CHILDREN for listener in spec.listeners}
    return environment


async def time_stack_start(data_dir: Path, data_folder: str, log: BinaryIO) -> StackStart:
    """Starts the launcher on `data_dir`, times every child to SERVING, reads their idle memory and
    stops it; the launcher's output is appended to `log`."""
    launched = time.perf_counter()
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.run",
        env=launcher_environment(data_dir),
        cwd=REPOSITORY,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.PIPE,
    )
    announced: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
    follower = asyncio.create_task(_follow(launcher, log, announced))
    try:
        try:
            serving_after = await asyncio.wait_for(
                _every_child_serving(announced, launched, data_dir / "credentials" / "ca.pem"), START_TIMEOUT_SECONDS
            )
        except TimeoutError:
            raise RuntimeError(f"the stack did not serve within {START_TIMEOUT_SECONDS:.0f} s") from None
        memory = await idle_memory("launcher", _children_by_name(launcher.pid))
    finally:
        await _stop(launcher)
        await asyncio.wait({follower}, timeout=STOP_TIMEOUT_SECONDS)
    return StackStart(data_folder, max(serving_after.values()), serving_after, memory)


async def _follow(
    launcher: asyncio.subprocess.Process, log: BinaryIO, announced: asyncio.Queue[tuple[str, str] | None]
) -> None:
    """Copies the launcher's terminal lines to the log and announces each child it reports serving;
    None once it closed its output."""
    assert launcher.stderr is not None, "spawned with a pipe"
    async for line in launcher.stderr:
        log.write(line)
        log.flush()
        serving = _SERVING_LINE.match(line.decode(errors="replace").rstrip())
        if serving:
            announced.put_nowait((serving["name"], serving["address"]))
    announced.put_nowait(None)


async def _every_child_serving(
    announced: asyncio.Queue[tuple[str, str] | None], launched: float, authority: Path
) -> dict[str, float]:
    """Seconds since `launched` at which each child answered SERVING, checked here on its health service
    (over TLS verified with the CA in `authority` for a child that serves TLS only)."""
    specs = {spec.name: spec for spec in CHILDREN}
    expected = set(specs)
    serving_after: dict[str, float] = {}
    while set(serving_after) != expected:
        child = await announced.get()
        if child is None:
            missing = ", ".join(sorted(expected - set(serving_after)))
            raise RuntimeError(f"the launcher exited before {missing} served")
        name, address = child
        await _until_serving(address, _channel_credentials(specs[name], authority))
        serving_after[name] = time.perf_counter() - launched
    return serving_after


def _channel_credentials(spec: ChildSpec, authority: Path) -> grpc.ChannelCredentials | None:
    """TLS verified with the launcher's CA for the gateway, whose main address serves TLS only (its
    plaintext health answers on a probe address the launcher does not announce); None for plaintext."""
    return grpc.ssl_channel_credentials(authority.read_bytes()) if spec.health_listener else None


async def _until_serving(address: str, credentials: grpc.ChannelCredentials | None) -> None:
    channel = (
        grpc.aio.insecure_channel(address) if credentials is None else grpc.aio.secure_channel(address, credentials)
    )
    async with channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=HEALTH_CHECK_TIMEOUT_SECONDS)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(HEALTH_POLL_SECONDS)


def _children_by_name(launcher_pid: int) -> dict[str, int]:
    """The launcher's children, `python -m <module>`, by the name the launcher gives each module."""
    names = {spec.module: spec.name for spec in CHILDREN}
    children: dict[str, int] = {}
    for process in psutil.Process(launcher_pid).children():
        try:
            command = process.cmdline()
        except psutil.Error:
            continue
        module = command[command.index("-m") + 1] if "-m" in command[:-1] else ""
        if module in names:
            children[names[module]] = process.pid
    return children


async def _stop(launcher: asyncio.subprocess.Process) -> None:
    """SIGTERM and a bounded wait; past it, the launcher and every process under it are killed."""
    if launcher.returncode is not None:
        return
    launcher.terminate()
    try:
        await asyncio.wait_for(launcher.wait(), STOP_TIMEOUT_SECONDS)
        return
    except TimeoutError:
        print(f"the launcher did not stop within {STOP_TIMEOUT_SECONDS:.0f} s of SIGTERM; killing it", file=sys.stderr)
    # Its children run in sessions of their own: they would outlive it.
    for process in psutil.Process(launcher.pid).children(recursive=True):
        try:
            process.kill()
        except psutil.Error:
            continue
    launcher.kill()
    await launcher.wait()


async def measure_startup(workspace: Path, starts: int) -> list[StackStart]:
    """The stack started `starts` times on one private data folder, fresh first."""
    data_dir = workspace / "data"
    measured: list[StackStart] = []
    with (workspace / "launcher.log").open("ab") as log:
        try:
            for index in range(starts):
                data_folder = "fresh" if index == 0 else "initialised"
                print(f"starting the stack on a {data_folder} data folder", flush=True)
                measured.append(await time_stack_start(data_dir, data_folder, log))
        finally:
            # The launcher stops its PostgreSQL; if it was killed, nobody else would.
            try:
                await asyncio.to_thread(stop_server, data_dir / "postgres")
            except PostgresError as error:
                print(f"WARNING: the embedded PostgreSQL may still be running: {error}", file=sys.stderr)
    return measured


def report(measured: list[StackStart]) -> str:
    """One line per start, then the children's idle memory."""
    lines = ["whole stack: `python -m tools.run` until every child answers SERVING"]
    for start in measured:
        each = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in start.serving_after.items())
        lines.append(f"  {start.data_folder:11} data folder {start.seconds:6.1f} s  ({each})")
    lines += [idle_memory_report(start.idle_memory) for start in measured]
    return "\n".join(lines)


def bench(argv: list[str] | None = None) -> list[StackStart]:
    """Runs the starts, prints the figures and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, choices=(1, 2), help=f"starts (default {FULL.starts})")
    sizes = chosen_sizes(parser, argv, full=FULL, quick=QUICK)
    workspace = Path(tempfile.mkdtemp(prefix="crm-startup-bench-"))
    try:
        measured = asyncio.run(measure_startup(workspace, sizes.starts))
    except BaseException:
        print(f"the launcher's output kept in {workspace / 'launcher.log'}", file=sys.stderr)
        raise
    shutil.rmtree(workspace, ignore_errors=True)
    print(report(measured))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([asdict(start) for start in measured], indent=2))
    print(f"written to {RESULTS.relative_to(REPOSITORY)}")
    return measured


def main(argv: list[str] | None = None) -> int:
    """Runs the starts."""
    bench(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
