"""The launcher (`python -m tools.run`, what `make run` runs) as a real process tree: a service that
dies is started again on its address while the others keep running, SIGTERM stops everything it
started, its embedded PostgreSQL included even after that server was restarted underneath it, and
the gateway it starts takes the local credentials it made for each kind of caller, as crmctl sends them,
and reaches every service the launcher started, the complaints and offers services too."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import LOYALTY_SERVICE
from tests.processes import ANY_PORT, ROOT
from tools.postgres import pg_ctl, running_postmaster

STARTUP_TIMEOUT_SECONDS = 60.0
RESTART_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
# Variables of the caller that would point the launcher at servers, addresses or credentials other than its own.
FOREIGN_SETTINGS = re.compile(r"^(CRM_POSTGRES_URL|.*_DATABASE_URL|.*_ADDRESS|.*_TARGET|GATEWAY_DEVELOPMENT_IDENTITY)$")
LOYALTY = "crm.loyalty.v1.LoyaltyService"
COMPLAINTS = "crm.complaints.v1.ComplaintService"
OFFERS = "crm.offers.v1.OfferService"


@dataclass
class Launcher:
    """A running `python -m tools.run` and what it started."""

    process: subprocess.Popen[bytes]
    output_path: Path
    """Its terminal output: the launcher's lines, the children's warnings and the banner."""
    postgres_dir: Path
    """The data folder of its embedded PostgreSQL."""
    credentials_dir: Path
    """The local credentials it makes."""
    gateway: str = ""
    """Where the gateway listens over TLS, read from the banner."""
    partner_gateway: str = ""
    """Where the gateway listens for retail partners over mutual TLS, read from the banner."""

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def child_running(self, module: str) -> psutil.Process:
        """The one child process running `python -m <module>` (its server, not its migrations)."""
        matches = [child for child in self.children() if _alive(child) and child.cmdline()[-2:] == ["-m", module]]
        assert len(matches) == 1, f"{module}: {matches}\n{self.output()}"
        return matches[0]


@asynccontextmanager
async def launched(tmp_path: Path) -> AsyncIterator[Launcher]:
    """The launcher on free ports of 127.0.0.1, with its own embedded PostgreSQL and no demo data, once
    it printed its banner; killed with everything it started if a test fails."""
    # Not under tmp_path: run as root, the server runs as another user, and any pytest starting on this
    # machine takes the others' access to pytest's folder away again (mode 0700).
    state_dir = Path(tempfile.mkdtemp(prefix="crm-launcher-"))
    launcher = _start_launcher(state_dir, tmp_path / "launcher.out")
    try:
        banner = await _wait_for_output(launcher, r"Gateway \(gRPC[^)]*\): (\S+)", STARTUP_TIMEOUT_SECONDS)
        launcher.gateway = banner.group(1)
        launcher.partner_gateway = (await _wait_for_output(launcher, r"Partner gateway \([^)]*\): (\S+)", 1)).group(1)
        yield launcher
    finally:
        if launcher.process.poll() is None:
            leftovers = launcher.children()
            launcher.process.kill()
            for leftover in leftovers:
                with suppress(psutil.NoSuchProcess):
                    leftover.kill()
            launcher.process.wait()
        if running_postmaster(launcher.postgres_dir):
            pg_ctl(launcher.postgres_dir, "stop", "--mode=immediate", "--wait")
        shutil.rmtree(state_dir, ignore_errors=True)


def _start_launcher(state_dir: Path, output_path: Path) -> Launcher:
    environment = {name: value for name, value in os.environ.items() if not FOREIGN_SETTINGS.match(name)}
    environment |= {
        "CRM_DATA_DIR": str(state_dir),
        "CRM_DEMO_CUSTOMERS": "0",
        "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
        "LOYALTY_GRPC_ADDRESS": ANY_PORT,
        "OFFERS_GRPC_ADDRESS": ANY_PORT,
        "COMPLAINTS_GRPC_ADDRESS": ANY_PORT,
        "GATEWAY_GRPC_ADDRESS": ANY_PORT,
        "GATEWAY_PARTNER_ADDRESS": ANY_PORT,
        "GATEWAY_HEALTH_CHECK_INTERVAL_SECONDS": "0.2",
    }
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.run"], cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    return Launcher(process, output_path, state_dir / "postgres", state_dir / "credentials")


async def test_a_killed_service_is_restarted_on_its_address_while_the_others_keep_running(tmp_path: Path):
    async with launched(tmp_path) as launcher:
        others = [launcher.child_running(module) for module in ("services.customer", "services.offers", "gateway")]
        # It credits goodwill to the loyalty service: it keeps running while that one is down.
        complaints = launcher.child_running("services.complaints")
        killed = launcher.child_running("services.loyalty")

        killed.send_signal(signal.SIGKILL)

        await _wait_for_output(launcher, r"loyalty service was killed by SIGKILL; restarting it in 0\.5 s", 10)
        await _wait_for_output(launcher, r"loyalty service is serving again", RESTART_TIMEOUT_SECONDS)
        # The gateway still dials the address it was given at start: serving proves the same address.
        await _wait_until_gateway_reports_serving(launcher, LOYALTY_SERVICE, RESTART_TIMEOUT_SECONDS)
        restarted = launcher.child_running("services.loyalty")
        assert restarted.pid != killed.pid
        assert all(_alive(process) for process in [*others, complaints])

        launcher.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(launcher.process.wait, STOP_TIMEOUT_SECONDS) == 0, launcher.output()
        assert not _alive(restarted)


async def test_sigterm_stops_every_child_and_the_postgres_restarted_underneath_it(tmp_path: Path):
    async with launched(tmp_path) as launcher:
        children = launcher.children()
        first_postmaster = _postmaster_pid(launcher.postgres_dir)

        await asyncio.to_thread(
            pg_ctl, launcher.postgres_dir, "restart", "--mode=fast", "--wait", f"--log={launcher.postgres_dir / 'log'}"
        )
        restarted_pid = _postmaster_pid(launcher.postgres_dir)
        assert restarted_pid is not None and restarted_pid != first_postmaster
        postmaster = psutil.Process(restarted_pid)

        launcher.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(launcher.process.wait, STOP_TIMEOUT_SECONDS) == 0, launcher.output()
        assert [child for child in children if _alive(child)] == []
        assert not (launcher.postgres_dir / "postmaster.pid").exists()
        assert not _alive(postmaster)
        assert _processes_working_in(launcher.postgres_dir) == []


async def test_the_gateway_takes_the_local_credentials_of_each_kind_of_caller(tmp_path: Path):
    async with launched(tmp_path) as launcher:
        crmctl = [
            "--target",
            launcher.gateway,
            "--partner-address",
            launcher.partner_gateway,
            "--credentials",
            str(launcher.credentials_dir),
        ]
        partner = ["--cert", str(launcher.credentials_dir / "partner-texnomart.pem")]
        partner += ["--key", str(launcher.credentials_dir / "partner-texnomart.key")]
        rewards = ["call", f"{LOYALTY}/ListRewards", "{}"]

        as_agent = await _crmctl(*crmctl, "--role", "agent", *rewards)
        agent_without_the_role = await _crmctl(*crmctl, "--role", "agent", "call", f"{LOYALTY}/GetProgramKpis")
        as_partner = await _crmctl(*crmctl, *partner, *rewards)
        customer, someone_else = uuid.uuid4(), uuid.uuid4()
        balance = ["call", f"{LOYALTY}/GetBalance"]
        as_customer = await _crmctl(
            *crmctl,
            "--customer",
            f"customers/{customer}",
            *balance,
            json.dumps({"name": f"accounts/{customer}/balance"}),
        )
        as_another_customer = await _crmctl(
            *crmctl,
            "--customer",
            f"customers/{customer}",
            *balance,
            json.dumps({"name": f"accounts/{someone_else}/balance"}),
        )
        as_the_development_identity = await _crmctl(*crmctl, "list")
        # The services started after the first ones, through the gateway pointed at them.
        complaints_of_the_agent = await _crmctl(*crmctl, "--role", "agent", "call", f"{COMPLAINTS}/ListComplaints")
        offerings = ["call", f"{OFFERS}/ListProductOfferings", "{}"]
        catalog_for_the_customer = await _crmctl(*crmctl, "--customer", f"customers/{customer}", *offerings)

        assert as_agent.returncode == 0, as_agent.stderr
        assert "reason: METHOD_NOT_ALLOWED" in agent_without_the_role.stderr
        assert as_partner.returncode == 0, as_partner.stderr
        # Their own account: past the policy, and there is none yet.
        assert "error: NOT_FOUND" in as_customer.stderr, as_customer.stderr
        assert "reason: NOT_YOUR_RESOURCE" in as_another_customer.stderr
        assert LOYALTY in as_the_development_identity.stdout, as_the_development_identity.stderr
        assert "Development identity: ON" in launcher.output()
        assert complaints_of_the_agent.returncode == 0, complaints_of_the_agent.stderr
        assert catalog_for_the_customer.returncode == 0, catalog_for_the_customer.stderr


async def _crmctl(*arguments: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tools.crmctl", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _wait_for_output(launcher: Launcher, pattern: str, timeout_seconds: float) -> re.Match[str]:
    """The first match of `pattern` in the launcher's output; fails with the output if it exits first."""
    async with asyncio.timeout(timeout_seconds):
        while not (found := re.search(pattern, launcher.output())):
            assert launcher.process.poll() is None, (
                f"launcher exited with {launcher.process.returncode}:\n{launcher.output()}"
            )
            await asyncio.sleep(0.1)
    return found


async def _wait_until_gateway_reports_serving(launcher: Launcher, service: str, timeout_seconds: float) -> None:
    """Health is open to anyone on the gateway's TLS address, verified with the launcher's CA."""
    request = health_pb2.HealthCheckRequest(service=service)
    authority = grpc.ssl_channel_credentials((launcher.credentials_dir / "ca.pem").read_bytes())
    async with grpc.aio.secure_channel(launcher.gateway, authority) as channel, asyncio.timeout(timeout_seconds):
        health = health_pb2_grpc.HealthStub(channel)
        while (await health.Check(request, timeout=2)).status != health_pb2.HealthCheckResponse.SERVING:
            await asyncio.sleep(0.1)


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid in the data folder's postmaster.pid; None without one."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _alive(process: psutil.Process) -> bool:
    """Running, and not merely a zombie waiting for init to reap it."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _processes_working_in(data_dir: Path) -> list[psutil.Process]:
    """Live processes whose working directory is `data_dir`: a postmaster and its backends work there."""
    found = []
    for process in psutil.process_iter():
        try:
            if _alive(process) and Path(process.cwd()).resolve() == data_dir.resolve():
                found.append(process)
        except psutil.Error:
            continue
    return found
