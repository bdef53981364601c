"""The services as the benchmarks run them: each a process of its own on a free port of 127.0.0.1, over
a database of its own on the benchmark's PostgreSQL, migrated first, logging warnings only."""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chassis.database import migrate
from chassis.service import ServiceDefinition, Settings
from tests.processes import ANY_PORT, ServiceProcess, start_process, wait_until_serving
from tools.postgres import PostgresCluster

QUIET = {"LOG_LEVEL": "WARNING"}
"""Every process of a benchmark logs warnings only: an access line per call would be measured too."""


@dataclass(frozen=True)
class BenchService:
    """A service process and the database it serves."""

    process: ServiceProcess
    database_url: str

    @property
    def address(self) -> str:
        """Where it serves gRPC, `127.0.0.1:<port>`."""
        return self.process.address


async def start_service(
    cluster: PostgresCluster,
    workspace: Path,
    service: ServiceDefinition[Settings],
    prefix: str,
    settings: Mapping[str, str] | None = None,
) -> BenchService:
    """Creates and migrates the database `bench_<prefix>`, starts `service` on it with `settings`
    (full variable names, `<PREFIX>_...`) and returns once it answers SERVING."""
    name = prefix.lower()
    database_url = cluster.ensure_database(f"bench_{name}")
    await asyncio.to_thread(migrate, database_url, service.migrations)
    environment = {
        **QUIET,
        f"{prefix}_DATABASE_URL": database_url,
        f"{prefix}_GRPC_ADDRESS": ANY_PORT,
        f"{prefix}_SHUTDOWN_DRAIN_SECONDS": "0",
        **(settings or {}),
    }
    process = start_process(f"{name}-bench", service.module, environment, workspace)
    try:
        await wait_until_serving(process)
    except BaseException:
        await asyncio.to_thread(process.stop)
        raise
    return BenchService(process, database_url)
