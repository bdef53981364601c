"""Starting the services as real processes for end-to-end tests, and waiting until they serve.

A process listens on port 0 of 127.0.0.1 and the test learns the port it bound from its "listening"
log line, so no port is picked by one process and bound by another later (which races).
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chassis.settings import Environment

if TYPE_CHECKING:
    from chassis.service import ServiceDefinition

ROOT = Path(__file__).resolve().parent.parent


ANY_PORT = "127.0.0.1:0"


@contextmanager
def refused_address() -> Iterator[str]:
    """An address of 127.0.0.1 where connections are refused while the block runs: its port is bound
    but not listening, so no other process can take it meanwhile."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{holder.getsockname()[1]}"


@dataclass
class ServiceProcess:
    """A service running as a child process."""

    name: str
    process: subprocess.Popen[bytes]
    address: str
    """`host:port` it serves on; empty until `wait_until_serving` read the bound port from its log."""
    log_path: Path
    more_addresses: dict[str, str] = field(default_factory=dict)
    """Further listeners by name (the gateway's `partner_port`, `probe_port`), from the same log line."""

    @property
    def partner_address(self) -> str:
        """The gateway's mutual-TLS address for retail partners."""
        return self.more_addresses["partner_port"]

    @property
    def health_address(self) -> str:
        """Where gRPC health answers in plaintext: the probe port when there is one."""
        return self.more_addresses.get("probe_port", self.address)

    def log(self) -> str:
        """What the process wrote so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_seconds: float = 15.0) -> int:
        """Sends SIGTERM and waits; kills it if it does not stop in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_process(name: str, module: str, env: dict[str, str], log_dir: Path, address: str = "") -> ServiceProcess:
    """Runs `python -m module` with the given extra environment, logging to a file. Set its listen
    address variable to `ANY_PORT` and leave `address` empty: the bound port is read from its log."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(name, process, address, log_path)


def _bound_address(service: ServiceProcess) -> str:
    """The address from the process' "listening" log line (and its further listeners' into
    `more_addresses`); empty while it has not logged it."""
    for line in service.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message") == "listening" and "port" in record:
            service.more_addresses = {
                key: f"127.0.0.1:{value}" for key, value in record.items() if key.endswith("_port") and key != "port"
            }
            return f"127.0.0.1:{record['port']}"
    return ""


async def wait_until_serving(service: ServiceProcess, health_name: str = "", timeout_seconds: float = 30.0) -> None:
    """Polls the process' health service until it reports SERVING; fails with its log if it dies."""
    deadline = asyncio.get_running_loop().time() + timeout_seconds
    while not service.address:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.log()}")
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{service.name} did not listen within {timeout_seconds}s:\n{service.log()}")
        service.address = _bound_address(service)
        await asyncio.sleep(0.05)
    async with grpc.aio.insecure_channel(service.health_address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.log()}")
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=health_name), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{service.name} did not serve within {timeout_seconds}s:\n{service.log()}")
            await asyncio.sleep(0.1)


def start_service(definition: "ServiceDefinition[Any]", env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """Brings the database that `env` names to the service's newest schema, then runs the service as a
    process (`python -m <its module>`) with `env`."""
    definition.migrate(definition.settings(Environment(env)))
    return start_process(definition.module.rsplit(".", 1)[-1], definition.module, env, log_dir)
