"""The gateway as the benchmarks run it: a process of its own, as deployed, over TLS with credentials
made for the run, with its own migrated database on the benchmark's server (it audits every call
there), and its rate limit per employee raised out of the way, so that what is measured is the path,
not a quota. Every exposed service the benchmark does not start points at a refused address."""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from gateway.audit_store import migrate_gateway_database
from gateway.routes import EXPOSED_SERVICES
from tests.gateway_support import gateway_environment
from tests.processes import ServiceProcess, refused_address, start_process, wait_until_serving
from tools.credentials import LocalCredentials, ensure_local_credentials
from tools.local_gateway import tls
from tools.postgres import PostgresCluster

GATEWAY_DATABASE = "bench_gateway"
UNTHROTTLED = {"EMPLOYEE_RATE_PER_SECOND": "1000000", "EMPLOYEE_RATE_BURST": "1000000"}
"""The gateway's rate limit per employee, raised beyond any phase: what is measured is the path, not a quota."""


@dataclass(frozen=True)
class MeasuredGateway:
    """The gateway process and the credentials it was started with."""

    process: ServiceProcess
    credentials: LocalCredentials

    def channel(self) -> grpc.aio.Channel:
        """A TLS channel to the gateway's main address, with no caller credentials of its own: each
        call carries `employee_metadata`."""
        return grpc.aio.secure_channel(self.process.address, tls(self.credentials.authority.certificate))

    def employee_metadata(self, roles: Sequence[str], subject: str) -> tuple[tuple[str, str], ...]:
        """The call metadata of employee `subject` with `roles`: their signed token as the bearer.

        The same header an app's call credentials send, added to each call by the benchmark instead:
        grpc's token call credentials run a plugin per call that cost the client, which shares this
        machine's cores with the gateway, 0.15-0.2 ms of CPU per call (a third of its work)."""
        return (("authorization", f"Bearer {self.credentials.employee_token(subject, roles)}"),)


async def start_gateway(
    cluster: PostgresCluster,
    workspace: Path,
    backends: Mapping[str, str],
    *,
    serving: Sequence[str],
    environment: Mapping[str, str],
) -> MeasuredGateway:
    """Starts the gateway in front of `backends` (its settings without `GATEWAY_`, e.g. `LOYALTY_TARGET`)
    and returns once it answers SERVING for each service name in `serving`; `environment` on top."""
    credentials = ensure_local_credentials(workspace / "credentials")
    database_url = cluster.ensure_database(GATEWAY_DATABASE)
    await asyncio.to_thread(migrate_gateway_database, database_url)
    with refused_address() as nowhere:
        # Somewhere to point for each service not started here, where nothing of anyone else answers.
        targets = {service.target_variable.removeprefix("GATEWAY_"): nowhere for service in EXPOSED_SERVICES}
        settings = gateway_environment(credentials, database_url, **{**targets, **backends, **UNTHROTTLED})
        gateway = start_process("gateway-bench", "gateway", {**environment, **settings}, workspace)
        try:
            for name in serving:
                await wait_until_serving(gateway, name)
        except BaseException:
            await asyncio.to_thread(gateway.stop)
            raise
    return MeasuredGateway(gateway, credentials)
