"""Usage ingestion throughput, end to end through the gRPC API, beside PostgreSQL's own COPY.

Sets up a temporary embedded PostgreSQL with 100,000 lines, starts the customer service as its own
process on 127.0.0.1, streams at least a million generated usage records through `IngestUsage` in
batches over a few concurrent streams, and then, in the same run and on the same server, loads the
same rows into a plain table with COPY. Reports records per second for both and their ratio, the
records per second until the monthly profiles hold every record (the service folds stored records in
the background, so acceptance runs ahead of it), and the service's idle memory before the first
stream. Bounded in count and time; nothing is asserted. Prints the figures and writes them as JSON to
`.data/bench/usage.json`.
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
from google.type import date_pb2

from chassis.database import migrate
from crm.customer.v1 import usage_pb2, usage_pb2_grpc
from services.customer.app import CUSTOMER
from tests.processes import ANY_PORT, start_process, wait_until_serving
from tests.support import USAGE_SERVICE as USAGE_SERVICE_NAME
from tools.bench.idle_memory import IdleMemory, idle_memory
from tools.bench.idle_memory import report as idle_memory_report
from tools.bench.sizes import chosen_sizes
from tools.postgres import open_cluster

REPOSITORY = Path(__file__).resolve().parents[2]
RESULTS = REPOSITORY / ".data" / "bench" / "usage.json"
STREAM_TIMEOUT_SECONDS = 600.0
FOLD_WAIT_SECONDS = 300.0
"""How long after the last batch the benchmark waits for the profiles to hold every record."""
FOLD_POLL_SECONDS = 0.2
_FOLDED_SQL = "SELECT coalesce(sum(record_count), 0)::bigint FROM monthly_usage"

UsageRow = tuple[str, str, date, float, float, float, int, float, bool, str, usage_pb2.RadioTechnology]
"""A usage record in the columns of `usage_copy`, in their order."""

_LINES_SQL = """
INSERT INTO customers (id, party_type, given_name, family_name, contact_media, phone_numbers, region_key,
    search_key, retailer_id, status, create_time, creator, update_time, updater, version)
SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'individual', 'Bench', 'Line ' || n, '[]',
    '{}', '', 'bench line ' || n, '', 'ACTIVE', now(), 'bench', now(), 'bench', 1
FROM generate_series(1, $1) AS n;
"""
_SUBSCRIPTIONS_SQL = """
INSERT INTO subscriptions (id, customer_id, msisdn, tariff_plan_id, activation_date, status, purpose, home_region,
    create_time, update_time, version)
SELECT ('00000000-0000-4000-9000-' || lpad(n::text, 12, '0'))::uuid,
    ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid,
    '+99890' || lpad(n::text, 7, '0'), 'plans/uz-start-5gb', current_date - 400, 'ACTIVE', 'PERSONAL', 'Toshkent',
    now(), now(), 1
FROM generate_series(1, $1) AS n;
"""
_COPY_TABLE = """
CREATE TABLE usage_copy (
    record_id text PRIMARY KEY, msisdn text NOT NULL, usage_date date NOT NULL, on_net_minutes float8 NOT NULL,
    off_net_minutes float8 NOT NULL, international_minutes float8 NOT NULL, sms_count int8 NOT NULL,
    data_mb float8 NOT NULL, roaming bool NOT NULL, area text NOT NULL, radio_technology int NOT NULL
)
"""


@dataclass(frozen=True)
class Figures:
    """What one run measured."""

    records: int
    lines: int
    streams: int
    batch: int
    ingest_seconds: float
    accepted: int
    copy_seconds: float
    idle_memory: list[IdleMemory]
    """The customer service's, before the first stream."""
    folded_seconds: float | None = None
    """From the start of streaming until every accepted record was folded into the monthly profiles (the
    service's background folder); None when that did not happen within FOLD_WAIT_SECONDS."""

    @property
    def ingest_per_second(self) -> float:
        """Records per second through IngestUsage, end to end."""
        return self.records / self.ingest_seconds

    @property
    def copy_per_second(self) -> float:
        """Rows per second PostgreSQL's COPY loads."""
        return self.records / self.copy_seconds

    @property
    def of_copy(self) -> float:
        """Ingestion's throughput as a share of COPY's."""
        return self.ingest_per_second / self.copy_per_second

    @property
    def folded_per_second(self) -> float | None:
        """Records per second from the start of streaming until the profiles held every accepted record."""
        return None if self.folded_seconds is None else self.accepted / self.folded_seconds

    def as_json(self) -> dict[str, object]:
        """The figures with their rates and ratio."""
        rates = {
            "ingest_per_second": self.ingest_per_second,
            "copy_per_second": self.copy_per_second,
            "folded_per_second": self.folded_per_second,
        }
        return {**asdict(self), **rates, "of_copy": self.of_copy}

    def report(self) -> str:
        """A readable report."""
        ingest_rate, copy_rate = self.ingest_per_second, self.copy_per_second
        return "\n".join(
            [
                idle_memory_report(self.idle_memory),
                "usage ingestion",
                f"  records            {self.records:,} over {self.lines:,} lines "
                f"({self.streams} streams, {self.batch:,} records a batch)",
                f"  accepted           {self.accepted:,}",
                f"  gRPC end to end    {self.ingest_seconds:8.2f} s  {ingest_rate:12,.0f} records/s",
                f"  PostgreSQL COPY    {self.copy_seconds:8.2f} s  {copy_rate:12,.0f} rows/s",
                f"  ratio              {self.of_copy:8.2f} of COPY",
                self._folded_line(),
            ]
        )

    def _folded_line(self) -> str:
        rate = self.folded_per_second
        if self.folded_seconds is None or rate is None:
            return f"  folded             not within {FOLD_WAIT_SECONDS:.0f} s of the last batch"
        share = rate / self.copy_per_second
        return f"  until folded       {self.folded_seconds:8.2f} s  {rate:12,.0f} records/s  ({share:.2f} of COPY)"


def generate_records(lines: int, records: int, seed: int = 11) -> list[UsageRow]:
    """`records` usage rows spread evenly over `lines` lines, on days of the last month."""
    rng = random.Random(seed)
    start = (datetime.now(UTC).date().replace(day=1) - timedelta(days=1)).replace(day=1)
    rows: list[UsageRow] = []
    for index in range(records):
        line = index % lines + 1
        day = start + timedelta(days=(index // lines) % 28)
        rows.append(
            (
                f"bench-{index}",
                f"+99890{line:07d}",
                day,
                round(rng.uniform(0, 30), 1),
                round(rng.uniform(0, 20), 1),
                0.0,
                rng.randint(0, 5),
                round(rng.uniform(0, 900), 1),
                index % 50 == 0,
                "Toshkent" if index % 3 else "Samarqand",
                usage_pb2.RADIO_TECHNOLOGY_4G,
            )
        )
    return rows


def to_batches(rows: list[UsageRow], batch: int) -> list[usage_pb2.IngestUsageRequest]:
    """The rows as IngestUsage messages."""
    messages = []
    for start in range(0, len(rows), batch):
        messages.append(
            usage_pb2.IngestUsageRequest(
                records=[
                    usage_pb2.UsageRecord(
                        record_id=r[0],
                        msisdn=r[1],
                        usage_date=date_pb2.Date(year=r[2].year, month=r[2].month, day=r[2].day),
                        on_net_minutes=r[3],
                        off_net_minutes=r[4],
                        international_minutes=r[5],
                        sms_count=r[6],
                        data_mb=r[7],
                        roaming=r[8],
                        area=r[9],
                        radio_technology=r[10],
                    )
                    for r in rows[start : start + batch]
                ]
            )
        )
    return messages


async def stream_all(target: str, batches: list[usage_pb2.IngestUsageRequest], streams: int) -> tuple[float, int]:
    """Sends every batch over `streams` concurrent IngestUsage calls; (seconds, accepted)."""
    queue: asyncio.Queue[usage_pb2.IngestUsageRequest] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def take() -> AsyncIterator[usage_pb2.IngestUsageRequest]:
        while not queue.empty():
            yield queue.get_nowait()

    async with grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = usage_pb2_grpc.UsageServiceStub(channel)
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(stub.IngestUsage(take(), timeout=STREAM_TIMEOUT_SECONDS) for _ in range(streams))
        )
        elapsed = time.perf_counter() - started
    return elapsed, sum(r.accepted for r in replies)


async def until_folded(url: str, accepted: int, started: float) -> float | None:
    """Seconds from `started` (a perf_counter reading) until the monthly profiles count `accepted`
    records, polled; None when they do not within FOLD_WAIT_SECONDS."""
    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        deadline = time.perf_counter() + FOLD_WAIT_SECONDS
        while time.perf_counter() < deadline:
            if await connection.fetchval(_FOLDED_SQL) >= accepted:
                return time.perf_counter() - started
            await asyncio.sleep(FOLD_POLL_SECONDS)
        return None
    finally:
        await connection.close()


async def copy_rows(url: str, rows: list[UsageRow]) -> float:
    """Seconds PostgreSQL takes to COPY the same rows into a table keyed by record id."""
    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        await connection.execute(_COPY_TABLE)
        started = time.perf_counter()
        await connection.copy_records_to_table("usage_copy", records=rows)
        return time.perf_counter() - started
    finally:
        await connection.close()


async def prepare_lines(url: str, lines: int) -> None:
    """Customers and lines for the records to land on, straight in SQL."""
    connection = await asyncpg.connect(_asyncpg_url(url))
    try:
        await connection.execute(_LINES_SQL.replace("$1", str(lines)))
        await connection.execute(_SUBSCRIPTIONS_SQL.replace("$1", str(lines)))
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql://postgres:@/", "postgresql://postgres@/")


@dataclass(frozen=True)
class UsageSizes:
    """How big a run is."""

    lines: int
    """Lines (subscriptions) the records land on."""
    records: int
    """Usage records streamed, and then loaded with COPY."""
    streams: int
    """Concurrent IngestUsage streams."""
    batch: int
    """Records per IngestUsage message."""


FULL = UsageSizes(lines=100_000, records=1_000_000, streams=4, batch=5_000)
QUICK = UsageSizes(lines=1_000, records=20_000, streams=4, batch=1_000)


async def run(sizes: UsageSizes) -> Figures:
    """One full benchmark run."""
    lines, records, streams, batch = sizes.lines, sizes.records, sizes.streams, sizes.batch
    workspace = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    cluster = open_cluster(workspace / "postgres", temporary=True)
    service = None
    finished = False
    try:
        url = cluster.ensure_database(f"bench_{uuid.uuid4().hex[:8]}")
        migrate(url, CUSTOMER.migrations)
        await prepare_lines(url, lines)
        print(f"generating {records:,} records over {lines:,} lines", flush=True)
        rows = generate_records(lines, records)
        batches = to_batches(rows, batch)
        service = start_process(
            "customer-bench",
            "services.customer",
            {
                "CUSTOMER_DATABASE_URL": url,
                "CUSTOMER_GRPC_ADDRESS": ANY_PORT,
                "CUSTOMER_MAX_MESSAGE_BYTES": str(64 << 20),
                "CUSTOMER_DATABASE_STATEMENT_TIMEOUT_SECONDS": "120",
                "LOG_LEVEL": "WARNING",
            },
            workspace,
        )
        await wait_until_serving(service, USAGE_SERVICE_NAME)
        address = service.address
        memory = await idle_memory("usage benchmark", {"customer service": service.process.pid})
        print(f"streaming through gRPC ({streams} streams)", flush=True)
        started = time.perf_counter()
        seconds, accepted = await stream_all(address, batches, streams)
        print("waiting for the profiles to hold every record", flush=True)
        folded_seconds = await until_folded(url, accepted, started)
        print("loading the same rows with COPY", flush=True)
        copy_seconds = await copy_rows(url, rows)
        finished = True
        return Figures(records, lines, streams, batch, seconds, accepted, copy_seconds, memory, folded_seconds)
    finally:
        if service is not None:
            await asyncio.to_thread(service.stop)
        cluster.stop()
        # The service log explains a failed run; a finished one needs none of it.
        if finished:
            shutil.rmtree(workspace, ignore_errors=True)
        else:
            print(f"service log kept in {workspace}", file=sys.stderr)


def bench(argv: list[str] | None = None) -> Figures:
    """Runs the benchmark, prints the figures and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, help=f"lines the records land on (default {FULL.lines:,})")
    parser.add_argument("--records", type=int, help=f"records streamed (default {FULL.records:,})")
    parser.add_argument("--streams", type=int, help=f"concurrent streams (default {FULL.streams})")
    parser.add_argument("--batch", type=int, help=f"records a message (default {FULL.batch:,})")
    sizes = chosen_sizes(parser, argv, full=FULL, quick=QUICK)
    if min(sizes.lines, sizes.records, sizes.streams, sizes.batch) < 1:
        parser.error("lines, records, streams and batch must be positive")
    figures = asyncio.run(run(sizes))
    print(figures.report())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures.as_json(), indent=2))
    print(f"written to {RESULTS.relative_to(REPOSITORY)}")
    return figures


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark."""
    bench(argv)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.exit(main())
