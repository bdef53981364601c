"""Runs the whole system on this machine: `python -m tools.run` (what `make run` calls).

Makes the local credentials on first use (tools.credentials: an operator CA, the gateway's TLS
certificate, the demo retail chain's client certificate, a token-signing key and its JWKS, in
<CRM_DATA_DIR>/credentials/), starts PostgreSQL (see tools.postgres), applies the migrations of every
database (the gateway's audit trail database too) in one process (tools.migrate_databases), starts the
services at once and then the gateway (`CHILDREN`) as child processes, every address known before
the first starts (a port 0 is taken free first), waits until each reports SERVING on the standard
gRPC health check (the gateway's on its plaintext probe address, as its main address serves TLS
only), loads demo data into an empty system with real credentials (tools.demo_data and the demo
modules beside it: customers, their usage and bills, loyalty, the offers catalog and coverage,
complaints), and prints how to call the gateway as each kind of caller.

The gateway trusts the local credentials and has its development identity on (`x-crm-user` taken
as an employee without proof), which is for a local run only; the banner says so.

Then it keeps them running. A child that exits is started again on the same address after a pause
(0.5 s, doubling up to 10 s; 0.5 s again once it has served for 30 s), and the others keep running:
the gateway and the services that follow its events reconnect by themselves. A child that exits more
than 5 times in a row within a minute, or does not come up at the first start, stops everything with
exit code 1. Ctrl-C or SIGTERM stops everything, the gateway first, with exit code 0.

The embedded PostgreSQL is stopped by its data folder, so also after it was restarted underneath the
launcher; a server given by CRM_POSTGRES_URL is left running.

Each child's log (JSON lines) goes to <CRM_DATA_DIR>/logs/<child>.log, the migrations' to
database-migrations.log; the terminal shows the launcher's own lines and the children's warnings and
errors, so that the banner stays readable.

Environment, all optional:
  CRM_DATA_DIR             where this machine's state goes: the embedded server's data in postgres/,
                           the children's logs in logs/, the credentials in credentials/ (default
                           .data in the repository)
  CUSTOMER_DATABASE_URL    the customer database; when unset, `crm_customer` is created on the
                           server of CRM_POSTGRES_URL, or on the embedded server
  LOYALTY_DATABASE_URL     the loyalty database; when unset, `crm_loyalty` is created the same way
  OFFERS_DATABASE_URL      the offers database; when unset, `crm_offers` is created the same way
  COMPLAINTS_DATABASE_URL  the complaints database; when unset, `crm_complaints` is created the same way
  GATEWAY_DATABASE_URL     the gateway's audit trail; when unset, `crm_gateway` is created the same way
  CRM_POSTGRES_URL         admin URL of an existing PostgreSQL server to use instead of the embedded one
  CUSTOMER_GRPC_ADDRESS    where the customer service listens (default 127.0.0.1:50051)
  LOYALTY_GRPC_ADDRESS     where the loyalty service listens (default 127.0.0.1:50052)
  OFFERS_GRPC_ADDRESS      where the offers service listens (default 127.0.0.1:50053)
  COMPLAINTS_GRPC_ADDRESS  where the complaints service listens (default 127.0.0.1:50054)
  GATEWAY_GRPC_ADDRESS     where the gateway listens over TLS (default 127.0.0.1:50050)
  GATEWAY_PARTNER_ADDRESS  where the gateway listens for retail partners, mutual TLS (default 127.0.0.1:50060)
  GATEWAY_PROBE_ADDRESS    where the gateway answers health in plaintext (default a free port)
                           Port 0 in a listen address lets the child pick a free port: the launcher
                           reads it from the child's "listening" log line, hands it to the children
                           that call it, and restarts the child on it.
  GATEWAY_DEVELOPMENT_IDENTITY  true (the default here) accepts `x-crm-user` without proof; false turns it off
  GATEWAY_CUSTOMER_TARGET  where the gateway finds the customer service (default: where it listens)
  GATEWAY_LOYALTY_TARGET, GATEWAY_OFFERS_TARGET, GATEWAY_COMPLAINTS_TARGET  likewise
  LOYALTY_CUSTOMER_FEED_TARGET  whose events open loyalty accounts and earn points (default: where the
                           customer service listens)
  OFFERS_CUSTOMER_TARGET   whose lines and usage the offers service advises on and whose events it
                           follows (default: where the customer service listens)
  OFFERS_LOYALTY_TARGET    whose events keep the customers' tiers for next-best actions (default: where
                           the loyalty service listens)
  COMPLAINTS_CUSTOMER_TARGET, COMPLAINTS_CUSTOMER_FEED_TARGET  whose customers complain and whose events
                           (segments, erasure) the complaints service follows (default: likewise)
  COMPLAINTS_LOYALTY_TARGET  where goodwill is credited (default: where the loyalty service listens)
  CRM_DEMO_CUSTOMERS       demo customers to load into an empty system (default 400; 0 loads none)
"""

import asyncio
import json
import os
import shlex
import signal
import socket
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools import demo_load
from tools.credentials import DEMO_RETAILER, LocalCredentials, ensure_local_credentials
from tools.demo_complaints import ComplaintsSample
from tools.demo_offers import TariffAdviceSample
from tools.local_gateway import (
    DEFAULT_PARTNER_ADDRESS,
    REPOSITORY,
    LocalGateway,
    credentials_dir,
    data_dir,
    shown_path,
)
from tools.postgres import PostgresError, provision_databases

MIGRATION_TIMEOUT_SECONDS = 120.0
STARTUP_TIMEOUT_SECONDS = 30.0
HEALTH_CHECK_TIMEOUT_SECONDS = 1.0
# Longer than the servers' own shutdown grace (10 s), so that in-flight calls can finish.
STOP_TIMEOUT_SECONDS = 15.0
# What a child writes after it exited is still shown, but a descendant holding its output open is not waited for.
OUTPUT_DRAIN_SECONDS = 2.0
FIRST_RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 10.0
# A child that served this long before it exited is restarted after the first delay again.
SERVED_LONG_ENOUGH_SECONDS = 30.0
# More exits than this in a row within the window is a child that cannot run: the launcher gives up.
MAX_EXITS_IN_WINDOW = 5
EXIT_WINDOW_SECONDS = 60.0
# Child log records shown on the terminal besides being written to the child's log file.
SHOWN_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})
# A retry loop repeats its warning many times a second while a dependency is down: shown once per period.
REPEAT_SHOWN_EVERY_SECONDS = 10.0
MAX_REMEMBERED_MESSAGES = 1000
# JSON log lines are read whole; a longer line is shown in pieces.
MAX_LOG_LINE_BYTES = 1 << 20


class LaunchError(Exception):
    """Something did not start, or a child keeps crashing; the message says what and why."""


@dataclass(frozen=True)
class Listener:
    """A further address a child listens on besides its main one."""

    port_key: str
    """The key of its port in the child's "listening" log line, e.g. "partner_port"."""
    variable: str
    """Its listen address setting, e.g. GATEWAY_PARTNER_ADDRESS."""
    default: str
    """Its listen address unless the variable is set."""


@dataclass(frozen=True)
class ChildSpec:
    """A server the launcher runs and keeps running."""

    name: str
    """How the launcher's messages call it, e.g. "loyalty service"."""
    module: str
    """Runs as `python -m <module>`; `python -m <module> migrate` applies its migrations."""
    prefix: str
    """Prefix of its settings: it listens on `<prefix>_GRPC_ADDRESS`, its database is `<prefix>_DATABASE_URL`."""
    default_port: int
    """Its port on 127.0.0.1 unless `<prefix>_GRPC_ADDRESS` is set."""
    database: str = ""
    """The database created for it when `<prefix>_DATABASE_URL` is unset; "" for a child without one."""
    dials: Mapping[str, str] = field(default_factory=dict)
    """Where it finds children listed before it: target variable -> that child's prefix. Unless set in the
    environment, the variable gets the address that child listens on."""
    listeners: tuple[Listener, ...] = ()
    """Its further listen addresses, pinned to their bound ports like the main one."""
    health_listener: str = ""
    """The port key of the plaintext listener its health is asked on; "" for the main address."""
    follows_dialled: bool = False
    """Whether it starts only once the children it dials serve: its own readiness follows theirs (the
    gateway's). The others start at once: they reach those they dial when they call, and their event
    feeds reconnect by themselves."""

    @property
    def address_variable(self) -> str:
        """Where it listens, `host:port`."""
        return f"{self.prefix}_GRPC_ADDRESS"

    @property
    def database_variable(self) -> str:
        """The URL of its database."""
        return f"{self.prefix}_DATABASE_URL"

    @property
    def log_name(self) -> str:
        """Its log file's name in the log folder."""
        return self.name.replace(" ", "-") + ".log"

    @property
    def migrations(self) -> str:
        """The folder of its database's revisions, relative to the repository."""
        return str(Path(*self.module.split("."), "migrations"))


PARTNER_PORT = "partner_port"
PROBE_PORT = "probe_port"
# A child dials only those before it; the gateway starts once those it dials serve, the others together.
# Stopped in the reverse order.
CHILDREN = (
    ChildSpec("customer service", "services.customer", "CUSTOMER", 50051, database="crm_customer"),
    ChildSpec(
        "loyalty service",
        "services.loyalty",
        "LOYALTY",
        50052,
        database="crm_loyalty",
        dials={"LOYALTY_CUSTOMER_FEED_TARGET": "CUSTOMER"},
    ),
    ChildSpec(
        "offers service",
        "services.offers",
        "OFFERS",
        50053,
        database="crm_offers",
        # Lines, usage and tariff changes, and the feeds of its read model (lines, usage, segments, tiers).
        dials={"OFFERS_CUSTOMER_TARGET": "CUSTOMER", "OFFERS_LOYALTY_TARGET": "LOYALTY"},
    ),
    ChildSpec(
        "complaints service",
        "services.complaints",
        "COMPLAINTS",
        50054,
        database="crm_complaints",
        dials={
            "COMPLAINTS_CUSTOMER_TARGET": "CUSTOMER",
            "COMPLAINTS_CUSTOMER_FEED_TARGET": "CUSTOMER",
            "COMPLAINTS_LOYALTY_TARGET": "LOYALTY",
        },
    ),
    ChildSpec(
        "gateway",
        "gateway",
        "GATEWAY",
        50050,
        database="crm_gateway",
        dials={
            "GATEWAY_CUSTOMER_TARGET": "CUSTOMER",
            "GATEWAY_LOYALTY_TARGET": "LOYALTY",
            "GATEWAY_OFFERS_TARGET": "OFFERS",
            "GATEWAY_COMPLAINTS_TARGET": "COMPLAINTS",
        },
        listeners=(
            Listener(PARTNER_PORT, "GATEWAY_PARTNER_ADDRESS", "127.0.0.1:50060"),
            # Only the launcher asks it, so any free port does.
            Listener(PROBE_PORT, "GATEWAY_PROBE_ADDRESS", "127.0.0.1:0"),
        ),
        health_listener=PROBE_PORT,
        follows_dialled=True,
    ),
)
DATABASES = {spec.database_variable: spec.database for spec in CHILDREN if spec.database}
MIGRATIONS = ChildSpec("database migrations", "tools.migrate_databases", "MIGRATIONS", 0)
"""The process applying every child's migrations, as the launcher's messages and logs name it."""
DEFAULT_GATEWAY_ADDRESS = "127.0.0.1:50050"
SEARCH = "crm.customer.v1.CustomerService/SearchCustomers"
LOYALTY = "crm.loyalty.v1.LoyaltyService"
COMPLAINTS = "crm.complaints.v1.ComplaintService"
OFFERS = "crm.offers.v1.OfferService"
DEVELOPMENT_IDENTITY_VARIABLE = "GATEWAY_DEVELOPMENT_IDENTITY"


@dataclass
class Child:
    """A supervised server: its spec, the process running it now, and where it is reached."""

    spec: ChildSpec
    log: BinaryIO
    """Its log file, open for the launcher's whole run."""
    process: asyncio.subprocess.Process | None = None
    output: asyncio.Task[None] | None = None
    """Copies the current process' output to the log (and the terminal); done once the process closed it."""
    address: str = ""
    """Where to reach it, `host:port`; empty until it first listened."""
    listener_addresses: dict[str, str] = field(default_factory=dict)
    """Where to reach its further listeners, by port key; empty until it first listened."""
    serving_since: float | None = None
    """Event-loop time at which the current process reported SERVING; None before."""
    shown: dict[str, tuple[float, int]] = field(default_factory=dict)
    """Per message shown on the terminal: when it was last shown, and how often it came since."""


def main() -> int:
    """Runs everything until Ctrl-C or SIGTERM, or a child that keeps crashing; returns the exit code."""
    # Until the event loop takes the signals over, SIGTERM stops like Ctrl-C: PostgreSQL is stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        demo_customers = _demo_customer_count(os.environ)
        state_dir = data_dir(os.environ)
        credentials = _local_credentials(state_dir / "credentials")
        databases = provision_databases(DATABASES, data_dir=state_dir / "postgres")
    except (LaunchError, PostgresError, ValueError) as error:
        _say(str(error))
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        environment = child_environment(os.environ, databases.urls, credentials)
        supervisor = Supervisor(environment, os.environ, state_dir / "logs")
        return asyncio.run(_run(supervisor, credentials, demo_customers))
    except LaunchError as error:
        _say(str(error))
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        # Another Ctrl-C must not leave the server running half way through its stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            databases.stop()
        except PostgresError as error:
            _say(f"WARNING: PostgreSQL may still be running: {error}")


def child_environment(
    environ: Mapping[str, str], database_urls: Mapping[str, str], credentials: LocalCredentials
) -> dict[str, str]:
    """What the children see: the caller's environment, the database URLs, the gateway's trust in the
    local credentials, and every listen address made explicit so that all processes agree on it
    (dialled targets are added as children listen)."""
    environment = {**environ, **database_urls, **credentials.gateway_environment()}
    # Local use only: the banner says that it is on.
    environment[DEVELOPMENT_IDENTITY_VARIABLE] = environment.get(DEVELOPMENT_IDENTITY_VARIABLE, "").strip() or "true"
    for spec in CHILDREN:
        default = f"127.0.0.1:{spec.default_port}"
        environment[spec.address_variable] = environment.get(spec.address_variable, "").strip() or default
        for listener in spec.listeners:
            environment[listener.variable] = environment.get(listener.variable, "").strip() or listener.default
        # No load balancer routes to a local run, so there is nothing to drain before stopping.
        environment.setdefault(f"{spec.prefix}_SHUTDOWN_DRAIN_SECONDS", "0")
    # Rank for VIP often, so that the demo shows the value-vip segment within seconds.
    environment.setdefault("CUSTOMER_VIP_RANK_INTERVAL_SECONDS", "10")
    return environment


def dial_address(listen_address: str) -> str:
    """Where a client on this machine reaches a server listening on `listen_address`."""
    host, _, port = listen_address.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


class Supervisor:
    """Starts the children (the gateway once those it dials serve), starts again any that exits, and
    stops them all."""

    def __init__(self, environment: dict[str, str], environ: Mapping[str, str], log_dir: Path) -> None:
        self.environment = environment
        """What the next child process is started with; every listen address fixed before the first."""
        self.log_dir = log_dir
        given_targets = {target for spec in CHILDREN for target in spec.dials if environ.get(target, "").strip()}
        _fix_free_ports(environment)
        for spec in CHILDREN:
            for target, prefix in spec.dials.items():
                if target not in given_targets:
                    dialled = next(other for other in CHILDREN if other.prefix == prefix)
                    environment[target] = dial_address(environment[dialled.address_variable])
        log_dir.mkdir(parents=True, exist_ok=True)
        self.children = [Child(spec, (log_dir / spec.log_name).open("wb")) for spec in CHILDREN]

    def address(self, prefix: str) -> str:
        """Where the child with settings prefix `prefix` is reached."""
        return next(child.address for child in self.children if child.spec.prefix == prefix)

    def listener_address(self, prefix: str, port_key: str) -> str:
        """Where the further listener `port_key` of the child with settings prefix `prefix` is reached."""
        return next(child.listener_addresses[port_key] for child in self.children if child.spec.prefix == prefix)

    async def migrate(self) -> None:
        """Applies the migrations of every child that has a database (each its own), one after the
        other in one process; LaunchError naming its log if they fail."""
        databases = [f"{c.spec.database_variable}={c.spec.migrations}" for c in self.children if c.spec.database]
        _say("applying the database migrations")
        with (self.log_dir / MIGRATIONS.log_name).open("wb") as log:
            migrations = Child(MIGRATIONS, log)
            process = await _spawn([MIGRATIONS.module, *databases], self.environment)
            output = asyncio.create_task(_copy_output(migrations, process, None))
            try:
                code = await asyncio.wait_for(process.wait(), MIGRATION_TIMEOUT_SECONDS)
            except TimeoutError:
                waited = f"{MIGRATION_TIMEOUT_SECONDS:.0f} s"
                raise LaunchError(f"the database migrations did not finish within {waited}") from None
            finally:
                # On Ctrl-C too: in a session of its own, the migration would otherwise run on unattended.
                await _kill(process)
                await asyncio.wait({output}, timeout=OUTPUT_DRAIN_SECONDS)
        if code != 0:
            log_path = shown_path(self.log_dir / MIGRATIONS.log_name)
            raise LaunchError(f"the database migrations failed with exit code {code} (their log: {log_path})")

    async def start_all(self, supervision: asyncio.TaskGroup) -> None:
        """Starts every child, the gateway once the children it dials serve, and has `supervision` keep
        each running; LaunchError if one does not start."""
        serving = {child.spec.prefix: asyncio.Event() for child in self.children}

        async def start_once_its_targets_serve(child: Child) -> None:
            if child.spec.follows_dialled:
                for prefix in sorted(set(child.spec.dials.values())):
                    await serving[prefix].wait()
            await self.start(child)
            serving[child.spec.prefix].set()
            supervision.create_task(self.keep_running(child), name=f"keep {child.spec.name} running")

        try:
            async with asyncio.TaskGroup() as starts:
                for child in self.children:
                    starts.create_task(start_once_its_targets_serve(child), name=f"start {child.spec.name}")
        except* LaunchError as failures:
            raise failures.exceptions[0] from None

    async def start(self, child: Child) -> None:
        """Starts the child for the first time; LaunchError if it exits or does not serve in time."""
        _say(f"starting {child.spec.name}")
        await self._launch(child)
        _say(f"{child.spec.name} is serving on {child.address}")

    async def keep_running(self, child: Child) -> None:
        """Starts the child again whenever it exits, until cancelled; LaunchError once it keeps exiting."""
        loop = asyncio.get_running_loop()
        exits_in_row = 0
        recent_exits: deque[float] = deque()
        while True:
            assert child.process is not None, "keep_running follows start"
            code = await child.process.wait()
            await _drain_output(child)
            now = loop.time()
            if child.serving_since is not None and now - child.serving_since >= SERVED_LONG_ENOUGH_SECONDS:
                exits_in_row = 0
                recent_exits.clear()
            exits_in_row += 1
            recent_exits.append(now)
            while now - recent_exits[0] > EXIT_WINDOW_SECONDS:
                recent_exits.popleft()
            ended = f"{child.spec.name} {_how_it_ended(code)}"
            if child.serving_since is None:
                ended += " while starting"
            if len(recent_exits) > MAX_EXITS_IN_WINDOW:
                raise LaunchError(
                    f"{ended}: its exit {len(recent_exits)} in a row within {EXIT_WINDOW_SECONDS:.0f} s; "
                    f"giving up and stopping everything (its log: {shown_path(self.log_dir / child.spec.log_name)})"
                )
            delay = min(FIRST_RESTART_DELAY_SECONDS * 2 ** min(exits_in_row - 1, 8), MAX_RESTART_DELAY_SECONDS)
            _say(f"{ended}; restarting it in {delay:g} s")
            await asyncio.sleep(delay)
            try:
                await self._launch(child)
            except LaunchError as error:
                # One that exited is reported by the next round; one that hangs is said here, then killed.
                if child.process.returncode is None:
                    _say(str(error))
                    await _kill(child.process)
                continue
            _say(f"{child.spec.name} is serving again on {child.address}")

    async def stop(self) -> None:
        """SIGTERM to each running child, the last started first, waiting (bounded) for each; then
        closes the logs."""
        for child in reversed(self.children):
            process = child.process
            if process is None or process.returncode is not None:
                continue
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                _say(f"{child.spec.name} ignored SIGTERM for {STOP_TIMEOUT_SECONDS:.0f} s; killing it")
                await _kill(process)
            _say(f"{child.spec.name} stopped (exit code {process.returncode})")
        for child in self.children:
            await _drain_output(child)
            if child.output is not None:
                child.output.cancel()
            child.log.close()

    async def _launch(self, child: Child) -> None:
        """Starts a process for the child and returns once it serves, its listen address pinned to the
        port it bound so that a restart comes back there; LaunchError if it exits or takes too long."""
        spec = child.spec
        missing = [target for target in spec.dials if not self.environment.get(target, "").strip()]
        if missing:
            raise LaunchError(f"{spec.name} needs {', '.join(missing)}: list the children it calls before it")
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + STARTUP_TIMEOUT_SECONDS
        listening: asyncio.Future[dict[str, int]] = loop.create_future()
        child.serving_since = None
        child.process = process = await _spawn([spec.module], self.environment)
        child.output = asyncio.create_task(_copy_output(child, process, listening))
        ports = await _bound_ports(child, process, listening, give_up_at)
        child.address = self._pin(spec.address_variable, ports["port"])
        for listener in spec.listeners:
            if listener.port_key not in ports:
                raise LaunchError(f"{spec.name} logged no {listener.port_key} for {listener.variable}")
            child.listener_addresses[listener.port_key] = self._pin(listener.variable, ports[listener.port_key])
        health_address = child.listener_addresses[spec.health_listener] if spec.health_listener else child.address
        await _wait_until_serving(child, process, health_address, give_up_at)
        child.serving_since = loop.time()

    def _pin(self, variable: str, port: int) -> str:
        """Pins the listen address in `variable` to the port bound, so that a restart comes back
        there; returns where a client on this machine reaches it."""
        host = self.environment[variable].rpartition(":")[0]
        self.environment[variable] = f"{host}:{port}"
        return dial_address(f"{host}:{port}")


async def _run(supervisor: Supervisor, credentials: LocalCredentials, demo_customers: int) -> int:
    session = asyncio.current_task()
    assert session is not None
    stop_requested = False
    stopping = False

    def request_stop() -> None:
        nonlocal stop_requested
        # A second Ctrl-C during shutdown must not cut the orderly stop short.
        if not stop_requested and not stopping:
            stop_requested = True
            session.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, request_stop)

    try:
        await supervisor.migrate()
        await _serve(supervisor, credentials, demo_customers)
        return 1  # not reached: serving ends by a signal or a child that keeps crashing
    except asyncio.CancelledError:
        if not stop_requested:
            raise
        _say("stopping")
        return 0
    except LaunchError as error:
        _say(str(error))
        return 1
    finally:
        stopping = True
        await supervisor.stop()


async def _serve(supervisor: Supervisor, credentials: LocalCredentials, demo_customers: int) -> None:
    """Starts the children, keeps each running, loads the demo data and prints the banner; runs until
    cancelled, or raises LaunchError when a child does not start or keeps crashing."""
    try:
        async with asyncio.TaskGroup() as supervision:
            await supervisor.start_all(supervision)
            gateway = LocalGateway(
                credentials,
                address=supervisor.address("GATEWAY"),
                partner_address=supervisor.listener_address("GATEWAY", PARTNER_PORT),
            )
            examples = await demo_load.ensure_demo_data(gateway, supervisor.address("CUSTOMER"), demo_customers, _say)
            development_identity = supervisor.environment[DEVELOPMENT_IDENTITY_VARIABLE].lower() in ("true", "1", "yes")
            _print_welcome(gateway, examples, supervisor.log_dir, development_identity=development_identity)
    except* LaunchError as failures:
        raise failures.exceptions[0] from None


def _fix_free_ports(environment: dict[str, str]) -> None:
    """Gives every listen address on port 0 a free port of its host now, so that every child knows
    where the others listen before any starts. (Another program could take the port before the child
    binds it; the child then fails to start, saying so.)"""
    for spec in CHILDREN:
        for variable in (spec.address_variable, *(listener.variable for listener in spec.listeners)):
            host, _, port = environment[variable].rpartition(":")
            if port == "0":
                with socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET) as probe:
                    probe.bind((host.strip("[]") or "0.0.0.0", 0))
                    environment[variable] = f"{host}:{probe.getsockname()[1]}"


async def _spawn(arguments: Sequence[str], environment: Mapping[str, str]) -> asyncio.subprocess.Process:
    # A session of its own keeps the terminal's Ctrl-C away from the child: the launcher stops the
    # children itself, gateway first, so that no call is cut off half way.
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *arguments,
        env=dict(environment),
        cwd=REPOSITORY,
        start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        limit=MAX_LOG_LINE_BYTES,
    )


async def _copy_output(
    child: Child, process: asyncio.subprocess.Process, listening: asyncio.Future[dict[str, int]] | None
) -> None:
    """Writes the process' log lines to the child's log file and shows its warnings, errors and
    plain-text lines (a traceback, a configuration error) on the terminal; resolves `listening` with
    the ports of its "listening" line (`port`, and e.g. `partner_port`), by key."""
    assert process.stderr is not None, "spawned with a pipe"
    while True:
        try:
            line = await process.stderr.readline()
        except ValueError:
            line = await process.stderr.read(MAX_LOG_LINE_BYTES)
        if not line:
            return
        child.log.write(line)
        child.log.flush()
        record = _json_record(line)
        if record is None:
            _show(child, line.decode(errors="replace").rstrip())
            continue
        ports = {key: value for key, value in record.items() if key.endswith("port") and isinstance(value, int)}
        if record.get("message") == "listening" and "port" in ports and listening and not listening.done():
            listening.set_result(ports)
        if record.get("level") in SHOWN_LEVELS:
            _show_record(child, record, asyncio.get_running_loop().time())


def _json_record(line: bytes) -> dict[str, object] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _show_record(child: Child, record: Mapping[str, object], now: float) -> None:
    """Shows a log record in one line (level, logger, message, the exception's last line), unless the
    same message was shown within the period; then it is counted and the count shown with it next."""
    message = f"{record.get('level')} {record.get('logger')}: {record.get('message')}"
    last_shown, repeats = child.shown.get(message, (-REPEAT_SHOWN_EVERY_SECONDS, 0))
    if now - last_shown < REPEAT_SHOWN_EVERY_SECONDS:
        child.shown[message] = (last_shown, repeats + 1)
        return
    if len(child.shown) >= MAX_REMEMBERED_MESSAGES:
        child.shown.clear()
    child.shown[message] = (now, 0)
    exception = record.get("exc_info")
    if isinstance(exception, str) and exception.strip():
        message += f" ({exception.strip().splitlines()[-1]})"
    if repeats:
        message += f" [{repeats} more like it since it was last shown]"
    _show(child, message)


async def _drain_output(child: Child) -> None:
    if child.output is not None:
        await asyncio.wait({child.output}, timeout=OUTPUT_DRAIN_SECONDS)


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def _bound_ports(
    child: Child, process: asyncio.subprocess.Process, listening: asyncio.Future[dict[str, int]], give_up_at: float
) -> dict[str, int]:
    """The ports from the child's "listening" log line, by key; LaunchError if it exits or takes too long."""
    exited = asyncio.create_task(process.wait())
    try:
        timeout = max(give_up_at - asyncio.get_running_loop().time(), 0.0)
        either: set[asyncio.Future[dict[str, int]] | asyncio.Task[int]] = {listening, exited}
        await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if listening.done():
        return listening.result()
    if process.returncode is not None:
        raise LaunchError(f"{child.spec.name} {_how_it_ended(process.returncode)} while starting")
    raise LaunchError(f"{child.spec.name} did not listen within {STARTUP_TIMEOUT_SECONDS:.0f} s")


async def _wait_until_serving(
    child: Child, process: asyncio.subprocess.Process, address: str, give_up_at: float
) -> None:
    """Returns once the child's health check at `address` (plaintext) answers SERVING; LaunchError if
    it dies or takes too long."""
    loop = asyncio.get_running_loop()
    request = health_pb2.HealthCheckRequest(service="")
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.returncode is not None:
                raise LaunchError(f"{child.spec.name} {_how_it_ended(process.returncode)} while starting")
            try:
                answer = await health.Check(request, timeout=HEALTH_CHECK_TIMEOUT_SECONDS)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if loop.time() > give_up_at:
                waited = f"{STARTUP_TIMEOUT_SECONDS:.0f} s"
                raise LaunchError(f"{child.spec.name} did not report SERVING on {address} within {waited}")
            await asyncio.sleep(0.25)


def _how_it_ended(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _demo_customer_count(environment: Mapping[str, str]) -> int:
    raw = environment.get("CRM_DEMO_CUSTOMERS", "").strip() or "400"
    if not raw.isdigit():
        raise LaunchError(f"CRM_DEMO_CUSTOMERS must be a whole number, got {raw!r}")
    return int(raw)


def _local_credentials(directory: Path) -> LocalCredentials:
    """The local credentials, made on first use, with the demo retail chain's certificate."""
    try:
        credentials = ensure_local_credentials(directory)
        credentials.partner(DEMO_RETAILER)
    except OSError as error:
        raise LaunchError(f"cannot make the local credentials in {shown_path(directory)}: {error}") from None
    return credentials


def _print_welcome(
    gateway: LocalGateway,
    examples: demo_load.ExampleValues,
    log_dir: Path,
    *,
    development_identity: bool,
) -> None:
    credentials = gateway.credentials
    partner = credentials.partner(DEMO_RETAILER)
    crmctl = _crmctl_command(gateway)
    agent = f"{crmctl} --role agent"
    samples = examples.customers
    customer = samples.customer_name if samples is not None else "customers/<id>"
    account = "accounts/" + customer.removeprefix("customers/")
    phone_number = samples.phone_number if samples is not None else "+998 90 123-45-67"
    if development_identity:
        employee = [("every service and method, as the development identity x-crm-user: cli", f"{crmctl} list")]
    else:
        employee = [("every service and method", f"{agent} list")]
    if samples is not None:
        employee += [
            ("a customer by phone number", _call(agent, SEARCH, {"phoneNumber": samples.phone_number})),
            (
                f'names ignoring case and diacritics: "{samples.name_query}" finds "{samples.name_match}"',
                _call(agent, SEARCH, {"nameQuery": samples.name_query}),
            ),
            (
                f"active customers in {samples.region}",
                _call(agent, SEARCH, {"region": samples.region, "status": "CUSTOMER_STATUS_ACTIVE", "pageSize": 5}),
            ),
            (
                "the lines of the customer with that phone number",
                _call(agent, "crm.customer.v1.CustomerService/ListSubscriptions", {"parent": customer}),
            ),
            (
                "their tier and the way to the next one",
                _call(agent, f"{LOYALTY}/GetTierStatus", {"name": f"{account}/tierStatus"}),
            ),
            (
                "how they earned and spent points",
                _call(agent, f"{LOYALTY}/ListEntries", {"parent": account, "pageSize": 5}),
            ),
        ]
    employee += [
        ("the rewards catalog with partner stock", _call(agent, f"{LOYALTY}/ListRewards", {"pageSize": 10})),
        (
            "the loyalty program's figures for the last 30 days (marketing's)",
            _call(f"{crmctl} --role marketing", f"{LOYALTY}/GetProgramKpis", {}),
        ),
        *_complaints_examples(crmctl, examples.complaints),
        *_offers_examples(crmctl, examples.offers),
    ]
    as_customer = [
        (
            "their own loyalty points: available, reserved and lapsing soon (another's: PERMISSION_DENIED)",
            _call(f"{crmctl} --customer {customer}", f"{LOYALTY}/GetBalance", {"name": f"{account}/balance"}),
        )
    ]
    if examples.complaints is not None:
        as_customer.append(
            (
                "their own complaint, with the resolution and the goodwill points it credited",
                _call(
                    f"{crmctl} --customer {examples.complaints.customer}",
                    f"{COMPLAINTS}/GetComplaint",
                    {"name": examples.complaints.complaint},
                ),
            )
        )
    if examples.offers is not None:
        as_customer.append(
            (
                "tariff advice for their own line",
                _call(
                    f"{crmctl} --customer {examples.offers.customer}",
                    f"{OFFERS}/RecommendTariff",
                    {"subscription": examples.offers.subscription},
                ),
            )
        )
    at_the_counter = f"{crmctl} --cert {shown_path(partner.certificate)} --key {shown_path(partner.key)}"
    as_partner = [
        (
            "a customer at the counter, found by phone number (partners see numbers masked)",
            _call(at_the_counter, SEARCH, {"phoneNumber": phone_number}),
        ),
        (
            "then, for half an hour, that customer's points",
            _call(at_the_counter, f"{LOYALTY}/GetBalance", {"name": f"{account}/balance"}),
        ),
    ]
    if development_identity:
        identity = (
            "Development identity: ON, for local use only. A call with metadata `x-crm-user: <name>` (and\n"
            "  `x-crm-roles: agent,supervisor`) is taken as that employee without proof; crmctl sends it when\n"
            "  given no credentials. GATEWAY_DEVELOPMENT_IDENTITY=false turns it off."
        )
    else:
        identity = "Development identity: off (GATEWAY_DEVELOPMENT_IDENTITY=false): every call proves its caller."
    lines = [
        "",
        "The CRM is running.",
        f"Gateway (gRPC over TLS, for employees' and customers' apps, bearer tokens): {gateway.address}",
        f"Partner gateway (gRPC over mutual TLS, for retail partners' client certificates): {gateway.partner_address}",
        f"Credentials: {shown_path(credentials.directory)}/ (ca.pem verifies the gateway and issues partner"
        f" certificates; token-signing.key signs local tokens; partner-{DEMO_RETAILER}.pem/.key: the demo"
        f" retail chain {DEMO_RETAILER})",
        identity,
        "",
        "As an employee (crmctl signs a token with the roles given; the policy: gateway/policy.toml):",
        *_examples(employee),
        "As a customer (a token naming them; their own resources only):",
        *_examples(as_customer),
        f"As the retail partner {DEMO_RETAILER} (its client certificate, at the partner address):",
        *_examples(as_partner),
        f"Any other gRPC tool: `{crmctl} token --role agent` prints a token for `authorization: Bearer <token>`;"
        f" verify the gateway with {shown_path(credentials.authority.certificate)}.",
        "",
        f"Logs: {shown_path(log_dir)}/ (warnings and errors also show here). A service that exits is restarted.",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _complaints_examples(crmctl: str, sample: ComplaintsSample | None) -> list[tuple[str, str]]:
    breached = (
        "tickets past their resolution target",
        _call(f"{crmctl} --role agent", f"{COMPLAINTS}/ListComplaints", {"breachedOnly": True}),
    )
    if sample is None:
        return [breached]
    return [
        (
            f"the tickets of {sample.department}, newest first, with their SLA clocks",
            _call(
                f"{crmctl} --role agent",
                f"{COMPLAINTS}/ListComplaints",
                {"department": sample.department, "pageSize": 5},
            ),
        ),
        (
            "complaint figures for 30 days: by channel, SLA compliance, CSAT, NPS, backlog (a supervisor's)",
            _call(f"{crmctl} --role supervisor", f"{COMPLAINTS}/GetComplaintKpis", {}),
        ),
    ]


def _offers_examples(crmctl: str, sample: TariffAdviceSample | None) -> list[tuple[str, str]]:
    if sample is None:
        catalog = {"market": "UZ", "kind": "OFFERING_KIND_TARIFF_PLAN"}
        return [
            (
                "the tariff plans on sale in Uzbekistan",
                _call(f"{crmctl} --role agent", f"{OFFERS}/ListProductOfferings", catalog),
            )
        ]
    return [
        (
            f"honest tariff advice for a line on {sample.current_plan}: {sample.recommended_plan} saves"
            f" {sample.monthly_saving} a month on its own usage",
            _call(f"{crmctl} --role agent", f"{OFFERS}/RecommendTariff", {"subscription": sample.subscription}),
        )
    ]


def _examples(examples: Sequence[tuple[str, str]]) -> list[str]:
    return [f"  # {description}\n  {command}" for description, command in examples]


def _crmctl_command(gateway: LocalGateway) -> str:
    """How to run crmctl here, with the options this run needs besides the defaults."""
    python = Path(sys.executable)
    shown = python.relative_to(REPOSITORY) if python.is_relative_to(REPOSITORY) else python
    options = ""
    if gateway.address != DEFAULT_GATEWAY_ADDRESS:
        options += f" --target {gateway.address}"
    if gateway.partner_address != DEFAULT_PARTNER_ADDRESS:
        options += f" --partner-address {gateway.partner_address}"
    if gateway.credentials.directory != credentials_dir({}):
        options += f" --credentials {shlex.quote(str(shown_path(gateway.credentials.directory)))}"
    return f"{shlex.quote(str(shown))} -m tools.crmctl{options}"


def _call(crmctl: str, method: str, request: Mapping[str, object]) -> str:
    return f"{crmctl} call {method} {shlex.quote(json.dumps(request, ensure_ascii=False))}"


def _show(child: Child, line: str) -> None:
    print(f"[{child.spec.name}] {line}", file=sys.stderr, flush=True)


def _say(message: str) -> None:
    print(f"[run] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
