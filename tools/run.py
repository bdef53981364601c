"""Runs the whole system on this machine: `python -m tools.run` (what `make run` calls).

Starts PostgreSQL (see tools.postgres), applies migrations, starts the customer service, the loyalty
service and the gateway as child processes, waits until each reports SERVING on the standard gRPC
health check, loads demo data into an empty system, and prints how to call the gateway. Ctrl-C or
SIGTERM stops everything; if a child dies, the rest are stopped and the exit code is non-zero.

Environment, all optional:
  CUSTOMER_DATABASE_URL    the customer database; when unset, `crm_customer` is created on the
                           server of CRM_POSTGRES_URL, or on an embedded server under .data/postgres
  LOYALTY_DATABASE_URL     the loyalty database; when unset, `crm_loyalty` is created the same way
  CRM_POSTGRES_URL         admin URL of an existing PostgreSQL server to use instead of the embedded one
  CUSTOMER_GRPC_ADDRESS    where the customer service listens (default 127.0.0.1:50051)
  LOYALTY_GRPC_ADDRESS     where the loyalty service listens (default 127.0.0.1:50052)
  GATEWAY_GRPC_ADDRESS     where the gateway listens (default 127.0.0.1:50050)
  GATEWAY_CUSTOMER_TARGET  where the gateway finds the customer service (default CUSTOMER_GRPC_ADDRESS)
  GATEWAY_LOYALTY_TARGET   where the gateway finds the loyalty service (default LOYALTY_GRPC_ADDRESS)
  LOYALTY_CUSTOMER_FEED_TARGET  whose events open loyalty accounts and earn points (default CUSTOMER_GRPC_ADDRESS)
  CRM_DEMO_CUSTOMERS       demo customers to load into an empty system (default 400; 0 loads none)
"""

import asyncio
import json
import os
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools import demo_behaviour, demo_data, demo_loyalty
from tools.postgres import PostgresError, provision_databases

REPOSITORY = Path(__file__).resolve().parent.parent
DATABASES = {"CUSTOMER_DATABASE_URL": "crm_customer", "LOYALTY_DATABASE_URL": "crm_loyalty"}
DEFAULT_ADDRESSES = {
    "CUSTOMER_GRPC_ADDRESS": "127.0.0.1:50051",
    "LOYALTY_GRPC_ADDRESS": "127.0.0.1:50052",
    "GATEWAY_GRPC_ADDRESS": "127.0.0.1:50050",
}
# Services whose databases are migrated before anything starts: (what, module).
MIGRATED_SERVICES = (("customer", "services.customer"), ("loyalty", "services.loyalty"))
# Where the gateway finds each backend when the caller did not say: target variable -> listen variable.
GATEWAY_TARGETS = {"GATEWAY_CUSTOMER_TARGET": "CUSTOMER_GRPC_ADDRESS", "GATEWAY_LOYALTY_TARGET": "LOYALTY_GRPC_ADDRESS"}
# Services that follow another's event feed: feed variable -> the producer's listen variable.
FEED_TARGETS = {"LOYALTY_CUSTOMER_FEED_TARGET": "CUSTOMER_GRPC_ADDRESS"}
MIGRATION_TIMEOUT_SECONDS = 120.0
STARTUP_TIMEOUT_SECONDS = 30.0
HEALTH_CHECK_TIMEOUT_SECONDS = 1.0
# Longer than the servers' own shutdown grace (10 s), so that in-flight calls can finish.
STOP_TIMEOUT_SECONDS = 15.0


class LaunchError(Exception):
    """Something did not start; the message says what and why."""


@dataclass(frozen=True)
class ChildSpec:
    """A server to run as a child process."""

    name: str
    module: str
    address_variable: str


CHILDREN = (
    ChildSpec("customer service", "services.customer", "CUSTOMER_GRPC_ADDRESS"),
    ChildSpec("loyalty service", "services.loyalty", "LOYALTY_GRPC_ADDRESS"),
    ChildSpec("gateway", "gateway", "GATEWAY_GRPC_ADDRESS"),
)


@dataclass
class Child:
    """A started server."""

    spec: ChildSpec
    process: asyncio.subprocess.Process
    address: str
    """Where to reach it, `host:port`."""


def main() -> int:
    """Runs everything until Ctrl-C, SIGTERM or a child's death; returns the exit code."""
    try:
        demo_customers = _demo_customer_count(os.environ)
        databases = provision_databases(DATABASES)
    except (LaunchError, PostgresError, ValueError) as error:
        _say(str(error))
        return 1
    except KeyboardInterrupt:
        return 130
    try:
        environment = child_environment(os.environ, databases.urls)
        return asyncio.run(_run(environment, demo_customers))
    except LaunchError as error:
        _say(str(error))
        return 1
    finally:
        databases.stop()


def child_environment(environ: Mapping[str, str], database_urls: Mapping[str, str]) -> dict[str, str]:
    """What the children see: the caller's environment, the database URLs, and every address the
    launcher relies on made explicit so that all processes agree on it."""
    environment = {**environ, **database_urls}
    for variable, default in DEFAULT_ADDRESSES.items():
        environment[variable] = environment.get(variable, "").strip() or default
        if environment[variable].rpartition(":")[2] == "0":
            raise LaunchError(f"{variable}={environment[variable]}: the launcher needs a fixed port, not 0")
    for prefix in ("CUSTOMER", "LOYALTY", "GATEWAY"):
        # No load balancer routes to a local run, so there is nothing to drain before stopping.
        environment.setdefault(f"{prefix}_SHUTDOWN_DRAIN_SECONDS", "0")
    # Rank for VIP often, so that the demo shows the value-vip segment within seconds.
    environment.setdefault("CUSTOMER_VIP_RANK_INTERVAL_SECONDS", "10")
    for target, listen in {**GATEWAY_TARGETS, **FEED_TARGETS}.items():
        if not environment.get(target, "").strip():
            environment[target] = dial_address(environment[listen])
    return environment


def dial_address(listen_address: str) -> str:
    """Where a client on this machine reaches a server listening on `listen_address`."""
    host, _, port = listen_address.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


async def _run(environment: Mapping[str, str], demo_customers: int) -> int:
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

    children: list[Child] = []
    try:
        await _migrate(environment)
        for spec in CHILDREN:
            child = await _start(spec, environment)
            children.append(child)
            await _wait_until_serving(child)
            _say(f"{spec.name} is serving on {child.address}")
        gateway = children[-1].address
        samples = await _ensure_demo_data(gateway, children[0].address, demo_customers)
        _print_welcome(gateway, samples)
        dead = await _first_to_exit(children)
        _say(f"{dead.spec.name} exited unexpectedly with code {dead.process.returncode}; stopping the rest")
        return 1
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
        await _stop(children)


async def _migrate(environment: Mapping[str, str]) -> None:
    for service, module in MIGRATED_SERVICES:
        await _migrate_service(service, module, environment)


async def _migrate_service(service: str, module: str, environment: Mapping[str, str]) -> None:
    _say(f"applying {service} database migrations")
    process = await _spawn([module, "migrate"], environment)
    try:
        code = await asyncio.wait_for(process.wait(), MIGRATION_TIMEOUT_SECONDS)
    except TimeoutError:
        raise LaunchError(f"{service} migrations did not finish within {MIGRATION_TIMEOUT_SECONDS:.0f} s") from None
    finally:
        # On Ctrl-C too: in a session of its own, the migration would otherwise run on unattended.
        if process.returncode is None:
            process.kill()
            await process.wait()
    if code != 0:
        raise LaunchError(f"{service} migrations failed with exit code {code}")


async def _start(spec: ChildSpec, environment: Mapping[str, str]) -> Child:
    _say(f"starting {spec.name}")
    process = await _spawn([spec.module], environment)
    return Child(spec=spec, process=process, address=dial_address(environment[spec.address_variable]))


async def _spawn(arguments: Sequence[str], environment: Mapping[str, str]) -> asyncio.subprocess.Process:
    # A session of its own keeps the terminal's Ctrl-C away from the child: the launcher stops the
    # children itself, gateway first, so that no call is cut off half way.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", *arguments, env=dict(environment), cwd=REPOSITORY, start_new_session=True
    )


async def _wait_until_serving(child: Child) -> None:
    """Returns once the child's health check answers SERVING; LaunchError if it dies or takes too long."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + STARTUP_TIMEOUT_SECONDS
    request = health_pb2.HealthCheckRequest(service="")
    async with grpc.aio.insecure_channel(child.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if child.process.returncode is not None:
                raise LaunchError(f"{child.spec.name} exited with code {child.process.returncode} while starting")
            try:
                answer = await health.Check(request, timeout=HEALTH_CHECK_TIMEOUT_SECONDS)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if loop.time() > give_up_at:
                waited = f"{STARTUP_TIMEOUT_SECONDS:.0f} s"
                raise LaunchError(f"{child.spec.name} did not report SERVING on {child.address} within {waited}")
            await asyncio.sleep(0.25)


async def _ensure_demo_data(gateway: str, customer_service: str, count: int) -> demo_data.DemoSamples | None:
    """Loads demo data unless the system already holds customers; samples for the examples either way.
    Customers go through the gateway; their usage and bills straight to the customer service, as the
    network and billing systems feed it inside the cluster."""
    try:
        if await demo_data.holds_customers(gateway):
            return await demo_data.find_samples(gateway)
        if count <= 0:
            return None
        _say(f"loading {count} demo customers")
        summary = await demo_data.load_demo_data(gateway, count)
        _say("loading their usage and billing")
        behaviour = await demo_behaviour.load_behaviour_data(customer_service)
        _say("filling the rewards catalog and waiting for the loyalty accounts to earn")
        loyalty = await demo_loyalty.load_loyalty_demo(gateway, summary.customers)
    except (demo_data.DemoLoadError, grpc.aio.AioRpcError) as error:
        # The system is up and worth exploring even without demo data.
        _say(f"WARNING: demo data not loaded: {error}")
        return None
    _say(
        f"loaded {summary.customers} customers, {summary.subscriptions} lines, "
        f"{summary.consent_records} consent records, {behaviour.usage_records} usage records, "
        f"{behaviour.invoices} invoices, {behaviour.payments} payments; {loyalty.accounts} loyalty accounts, "
        f"{loyalty.rewards} rewards, {loyalty.redemptions} redemptions"
    )
    return summary.samples


def _demo_customer_count(environment: Mapping[str, str]) -> int:
    raw = environment.get("CRM_DEMO_CUSTOMERS", "").strip() or "400"
    if not raw.isdigit():
        raise LaunchError(f"CRM_DEMO_CUSTOMERS must be a whole number, got {raw!r}")
    return int(raw)


async def _first_to_exit(children: Sequence[Child]) -> Child:
    waits = {asyncio.create_task(child.process.wait()): child for child in children}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return waits[done.pop()]


async def _stop(children: Sequence[Child]) -> None:
    """SIGTERM to each running child, the last started first, waiting (bounded) for each."""
    for child in reversed(children):
        if child.process.returncode is not None:
            continue
        child.process.terminate()
        try:
            await asyncio.wait_for(child.process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            _say(f"{child.spec.name} ignored SIGTERM for {STOP_TIMEOUT_SECONDS:.0f} s; killing it")
            child.process.kill()
            await child.process.wait()
        _say(f"{child.spec.name} stopped (exit code {child.process.returncode})")


def _print_welcome(gateway: str, samples: demo_data.DemoSamples | None) -> None:
    crmctl = _crmctl_command(gateway)
    search = "crm.customer.v1.CustomerService/SearchCustomers"
    examples = [("every service and method", f"{crmctl} list")]
    loyalty = "crm.loyalty.v1.LoyaltyService"
    if samples is not None:
        account = "accounts/" + samples.customer_name.removeprefix("customers/")
        examples += [
            ("a customer by phone number", _call(crmctl, search, {"phoneNumber": samples.phone_number})),
            (
                f'names ignoring case and diacritics: "{samples.name_query}" finds "{samples.name_match}"',
                _call(crmctl, search, {"nameQuery": samples.name_query}),
            ),
            (
                f"active customers in {samples.region}",
                _call(crmctl, search, {"region": samples.region, "status": "CUSTOMER_STATUS_ACTIVE", "pageSize": 5}),
            ),
            (
                "the lines of the customer with that phone number",
                _call(crmctl, "crm.customer.v1.CustomerService/ListSubscriptions", {"parent": samples.customer_name}),
            ),
            (
                "their loyalty points: available, reserved and lapsing soon",
                _call(crmctl, f"{loyalty}/GetBalance", {"name": f"{account}/balance"}),
            ),
            (
                "their tier and the way to the next one",
                _call(crmctl, f"{loyalty}/GetTierStatus", {"name": f"{account}/tierStatus"}),
            ),
            (
                "how they earned and spent points",
                _call(crmctl, f"{loyalty}/ListEntries", {"parent": account, "pageSize": 5}),
            ),
        ]
    examples += [
        ("the rewards catalog with partner stock", _call(crmctl, f"{loyalty}/ListRewards", {"pageSize": 10})),
        ("the loyalty program's figures for the last 30 days", _call(crmctl, f"{loyalty}/GetProgramKpis", {})),
    ]
    lines = [
        "",
        f"The CRM is running. Gateway (gRPC, plaintext, with reflection): {gateway}",
        "Try:",
        *(f"  # {description}\n  {command}" for description, command in examples),
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _crmctl_command(gateway: str) -> str:
    python = Path(sys.executable)
    shown = python.relative_to(REPOSITORY) if python.is_relative_to(REPOSITORY) else python
    target = "" if gateway == DEFAULT_ADDRESSES["GATEWAY_GRPC_ADDRESS"] else f" --target {gateway}"
    return f"{shlex.quote(str(shown))} -m tools.crmctl{target}"


def _call(crmctl: str, method: str, request: Mapping[str, object]) -> str:
    return f"{crmctl} call {method} {shlex.quote(json.dumps(request, ensure_ascii=False))}"


def _say(message: str) -> None:
    print(f"[run] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
