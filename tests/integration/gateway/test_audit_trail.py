"""The gateway's audit trail: every record the trail takes is logged and stored once, the database
refuses to change or remove one, the audit service lists them newest first a page at a time, and
records survive a database that cannot be reached for a while."""

import asyncio
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.database import Database, create_engine
from chassis.errors import InvalidArgument
from chassis.pagination import next_page_token
from chassis.settings import DatabaseSettings
from crm.gateway.v1 import audit_pb2
from crm.gateway.v1.audit_pb2_grpc import AuditServiceStub
from gateway.audit import AuditRecord, AuditTrail
from gateway.audit_store import MAX_TEXT_CHARS, insert_audit_records
from tests.support import failure

AUDIT_FIELDS = {
    "time",
    "subject",
    "caller_kind",
    "roles",
    "tenant",
    "method",
    "resource",
    "outcome",
    "reason",
    "trace_id",
    "record_id",
}
EARN_POINTS = "/crm.loyalty.v1.LoyaltyService/EarnPoints"
# What every log line carries whatever was logged (plus what the capture itself adds).
LOG_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def audited(subject: str, **changes: object) -> AuditRecord:
    """An agent's successful EarnPoints call about a fresh customer, with `changes` applied."""
    values: dict[str, object] = {
        "time": datetime.now(UTC),
        "subject": subject,
        "caller_kind": "employee",
        "roles": ("agent",),
        "tenant": "",
        "method": EARN_POINTS,
        "resource": f"customers/{uuid.uuid4()}",
        "outcome": "OK",
        "reason": "",
        "trace_id": uuid.uuid4().hex,
        **changes,
    }
    return AuditRecord(**values)  # type: ignore[arg-type]


def fresh_subject() -> str:
    """An employee subject no other test uses (the database is shared by the worker's tests)."""
    return f"agent-{uuid.uuid4()}"


def fresh_method() -> str:
    """A full gRPC method no other test records."""
    return f"/crm.test{uuid.uuid4().hex}.v1.AuditedService/Change"


async def stored_rows(engine: AsyncEngine, subject: str) -> list[dict[str, object]]:
    """The rows of `subject`, oldest first, with the transaction that wrote each."""
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT *, xmin::text AS written_by FROM audit_records WHERE subject = :subject ORDER BY id"),
            {"subject": subject},
        )
        return [dict(row._mapping) for row in result]


async def eventually(check: Callable[[], Awaitable[bool]], timeout_seconds: float = 15.0) -> None:
    """Waits, bounded, until `check` holds."""
    async with asyncio.timeout(timeout_seconds):
        while not await check():
            await asyncio.sleep(0.02)


async def written(engine: AsyncEngine, subject: str, count: int) -> None:
    """Waits, bounded, until `count` rows of `subject` are stored."""

    async def enough() -> bool:
        return len(await stored_rows(engine, subject)) >= count

    await eventually(enough)


async def write_through_trail(database: Database, records: list[AuditRecord]) -> None:
    """Records `records` with a trail of its own and waits until it has written them."""
    trail = AuditTrail(database, flush_interval_seconds=0.02)
    trail.start()
    for record in records:
        trail.record(record)
    await trail.stop()


async def list_all(
    stub: AuditServiceStub, page_size: int, **filters: str
) -> tuple[list[audit_pb2.AuditRecord], list[str]]:
    """Every record matching `filters`, page by page; the records and each page's next token."""
    records: list[audit_pb2.AuditRecord] = []
    tokens: list[str] = []
    token = ""
    while True:
        page = await stub.ListAuditRecords(
            audit_pb2.ListAuditRecordsRequest(page_size=page_size, page_token=token, **filters), timeout=5
        )
        records.extend(page.audit_records)
        tokens.append(page.next_page_token)
        token = page.next_page_token
        if not token:
            return records, tokens


def number(record: audit_pb2.AuditRecord) -> int:
    """The number in `auditRecords/{n}`."""
    return int(record.name.removeprefix("auditRecords/"))


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class SwitchablePort:
    """A local TCP port in front of PostgreSQL: refused while down, forwarding while up; going down
    also cuts every connection through it, as a database outage would."""

    def __init__(self, connect_to_database: Callable[[], Awaitable[Streams]]) -> None:
        self._connect_to_database = connect_to_database
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        """Accepts connections and forwards them to PostgreSQL."""
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Refuses connections and cuts those open."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._connections):
            writer.close()

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await self._connect_to_database()
        self._connections |= {client_writer, server_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()
                self._connections.discard(sink)

        await asyncio.gather(
            pipe(client_reader, server_writer), pipe(server_reader, client_writer), return_exceptions=True
        )


@pytest.fixture
async def switchable_database(gateway_database_url: str) -> AsyncIterator[tuple[SwitchablePort, Database]]:
    """The gateway database reached through a port that starts down."""
    url = make_url(gateway_database_url)
    socket_dir = url.query.get("host")

    def connect_to_database() -> Awaitable[Streams]:
        # The embedded server listens on a Unix socket only; a server given by URL may listen on TCP.
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):
            return asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{url.port or 5432}")
        return asyncio.open_connection(url.host or "127.0.0.1", url.port or 5432)

    port = SwitchablePort(connect_to_database)
    through_port = (
        url.difference_update_query(["host"])
        .set(host="127.0.0.1", port=port.port)
        .render_as_string(hide_password=False)
    )
    database = Database(
        create_engine(DatabaseSettings(url=through_port, statement_timeout_seconds=2), application_name="tests")
    )
    yield port, database
    await database.close()
    await port.down()


# Writing ---------------------------------------------------------------------------------------------


async def test_every_record_the_trail_takes_is_stored_exactly_once_in_batches_of_at_most_max_batch(
    gateway_database: Database, gateway_engine: AsyncEngine
):
    subject = fresh_subject()
    records = [audited(subject, resource=f"customers/{uuid.uuid4()}") for _ in range(1234)]
    trail = AuditTrail(gateway_database, flush_interval_seconds=0.05, max_batch=100)
    trail.start()
    for index, record in enumerate(records):
        trail.record(record)
        if index % 200 == 0:
            await asyncio.sleep(0)  # let the writer run between arrivals, as on a live gateway
    await trail.stop()

    rows = await stored_rows(gateway_engine, subject)
    assert sorted(str(row["resource"]) for row in rows) == sorted(r.resource for r in records)
    batches: dict[object, int] = {}
    for row in rows:
        batches[row["written_by"]] = batches.get(row["written_by"], 0) + 1
    assert len(batches) >= 13
    assert max(batches.values()) <= 100
    assert trail.buffered == 0


async def test_records_reach_the_database_within_the_flush_interval_while_the_trail_runs(
    gateway_database: Database, gateway_engine: AsyncEngine
):
    subject = fresh_subject()
    trail = AuditTrail(gateway_database, flush_interval_seconds=0.05)
    trail.start()
    try:
        for _ in range(3):
            trail.record(audited(subject))
        await written(gateway_engine, subject, 3)
    finally:
        await trail.stop()
    assert len(await stored_rows(gateway_engine, subject)) == 3


async def test_a_full_batch_is_written_at_once_without_waiting_for_the_flush_interval(
    gateway_database: Database, gateway_engine: AsyncEngine
):
    subject = fresh_subject()
    trail = AuditTrail(gateway_database, flush_interval_seconds=3600, max_batch=10)
    trail.start()
    try:
        for _ in range(10):
            trail.record(audited(subject))
        await written(gateway_engine, subject, 10)
    finally:
        await trail.stop()


async def test_a_stored_record_keeps_every_field(gateway_database: Database, gateway_engine: AsyncEngine):
    subject = "retailers/chain-7"
    record = audited(
        subject,
        caller_kind="retailer",
        roles=(),
        tenant="chain-7",
        method="/crm.customer.v1.CustomerService/GetCustomer",
        outcome="PERMISSION_DENIED",
        reason="NOT_YOUR_CUSTOMER",
        time=datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
    )
    await write_through_trail(gateway_database, [record])

    [row] = [row for row in await stored_rows(gateway_engine, subject) if row["resource"] == record.resource]
    assert {name: row[name] for name in AUDIT_FIELDS} == {
        **{f.name: getattr(record, f.name) for f in fields(AuditRecord)},
        "roles": [],
    }


async def test_a_batch_written_again_after_a_lost_commit_acknowledgement_is_stored_once(
    gateway_database: Database, gateway_engine: AsyncEngine
):
    subject = fresh_subject()
    batch = [audited(subject) for _ in range(5)]
    for _ in range(2):  # the writer could not tell whether the first commit landed, so it wrote again
        async with gateway_database.transaction() as session:
            await insert_audit_records(session, batch)
    rows = await stored_rows(gateway_engine, subject)
    assert sorted(row["record_id"] for row in rows) == sorted(record.record_id for record in batch)


async def test_text_postgresql_cannot_hold_is_stored_replaced_and_cut_and_found_by_the_same_filter(
    gateway_database: Database, audit_stub: AuditServiceStub
):
    prefix = f"agent-{uuid.uuid4()}"
    # An unpaired surrogate (a token's JSON may carry one) is stored as "?"; no client can send it.
    await write_through_trail(gateway_database, [audited(prefix + "\x00\ud800" + "x" * 5000)])

    found_by = prefix + "\x00?" + "x" * 5000
    page = await audit_stub.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(subject=found_by), timeout=5)

    [stored] = page.audit_records
    assert len(stored.subject) == MAX_TEXT_CHARS
    assert stored.subject == prefix + "\ufffd?" + "x" * (MAX_TEXT_CHARS - len(prefix) - 3) + "…"


async def test_a_record_taken_while_the_database_is_unreachable_is_kept_and_written_once_it_is_back(
    switchable_database: tuple[SwitchablePort, Database], gateway_engine: AsyncEngine
):
    port, database = switchable_database
    subject = fresh_subject()
    trail = AuditTrail(database, flush_interval_seconds=0.05)
    trail.start()
    try:
        trail.record(audited(subject))

        async def refused_twice() -> bool:
            return trail.failures >= 2

        await eventually(refused_twice)
        assert await stored_rows(gateway_engine, subject) == []
        assert trail.buffered == 1

        await port.up()
        await written(gateway_engine, subject, 1)
        assert trail.failures == 0
    finally:
        await trail.stop()
    assert len(await stored_rows(gateway_engine, subject)) == 1


async def test_stop_gives_up_after_its_timeout_while_the_database_stays_unreachable_saying_how_many(
    switchable_database: tuple[SwitchablePort, Database], caplog: pytest.LogCaptureFixture
):
    _, database = switchable_database
    trail = AuditTrail(database, flush_interval_seconds=0.05)
    trail.start()
    trail.record(audited(fresh_subject()))
    trail.record(audited(fresh_subject()))

    async with asyncio.timeout(10):
        await trail.stop(timeout_seconds=0.5)

    errors = [r.getMessage() for r in caplog.records if r.name == "crm.audit.writer" and r.levelno == logging.ERROR]
    assert errors == ["2 audit records were not written: the database did not take them before the trail stopped"]


async def test_when_the_buffer_is_full_the_oldest_records_are_dropped_with_an_error_saying_how_many(
    gateway_database: Database, gateway_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="crm.audit")
    subject = fresh_subject()
    records = [audited(subject, resource=f"customers/{index}") for index in range(25)]
    trail = AuditTrail(gateway_database, flush_interval_seconds=0.05, max_batch=5, max_buffered=10)
    for record in records:  # not started: nothing is written yet, as while the database is down
        trail.record(record)
    assert trail.buffered == 10
    await trail.stop()

    assert [row["resource"] for row in await stored_rows(gateway_engine, subject)] == [r.resource for r in records[15:]]
    errors = [r for r in caplog.records if r.name == "crm.audit.writer" and r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "dropped the 15 oldest audit records: 10 were waiting for the database, the most kept"
    ]
    assert len([r for r in caplog.records if r.name == "crm.audit"]) == 25


async def test_each_record_is_logged_once_on_crm_audit_with_its_fields_and_nothing_else(
    gateway_database: Database, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="crm.audit")
    subject = f"customers/{uuid.uuid4()}"
    records = [
        audited(subject, caller_kind="customer", roles=(), method="/crm.customer.v1.CustomerService/UpdateCustomer"),
        audited(subject, caller_kind="customer", roles=(), outcome="PERMISSION_DENIED", reason="NOT_YOUR_CUSTOMER"),
    ]
    trail = AuditTrail(gateway_database)
    for record in records:
        trail.record(record)

    lines = [r for r in caplog.records if r.name == "crm.audit"]
    assert [(line.levelno, line.getMessage()) for line in lines] == [(logging.INFO, "call audited")] * 2
    assert [line.audit for line in lines] == [r.log_fields() for r in records]
    for line, record in zip(lines, records, strict=True):
        assert set(line.audit) == AUDIT_FIELDS == {f.name for f in fields(AuditRecord)}
        assert line.audit["time"] == record.time.isoformat()
        # Only what the record holds: the line adds nothing of the call beyond it.
        assert set(vars(line)) - LOG_RECORD_ATTRIBUTES == {"audit"}
    await trail.stop()


def test_a_record_refuses_a_time_without_zone_an_unknown_kind_or_outcome_and_a_malformed_trace_id():
    for bad in (
        {"time": datetime(2026, 1, 1)},
        {"caller_kind": "service"},
        {"outcome": "DENIED"},
        {"trace_id": "ABC"},
    ):
        with pytest.raises(ValueError):
            audited(fresh_subject(), **bad)


# The database -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET outcome = 'OK' WHERE subject = :subject",
        "DELETE FROM audit_records WHERE subject = :subject",
        "UPDATE audit_records SET outcome = 'OK' WHERE false",
        "DELETE FROM audit_records WHERE false",
        "TRUNCATE audit_records",
    ],
    ids=["update", "delete", "update-of-no-row", "delete-of-no-row", "truncate"],
)
async def test_the_database_refuses_to_change_or_remove_audit_records(
    statement: str, gateway_database: Database, gateway_engine: AsyncEngine
):
    subject = fresh_subject()
    record = audited(subject, outcome="PERMISSION_DENIED", reason="NOT_YOUR_CUSTOMER")
    await write_through_trail(gateway_database, [record])

    with pytest.raises(DBAPIError, match="audit records are append-only"):
        async with gateway_engine.begin() as connection:
            await connection.execute(text(statement), {"subject": subject})

    [row] = await stored_rows(gateway_engine, subject)
    assert (row["outcome"], row["reason"]) == ("PERMISSION_DENIED", "NOT_YOUR_CUSTOMER")


# Listing through the audit service ---------------------------------------------------------------------


async def test_records_are_listed_newest_first_a_page_at_a_time_equal_times_by_number(
    gateway_database: Database, audit_stub: AuditServiceStub
):
    subject = fresh_subject()
    start = datetime.now(UTC).replace(microsecond=0)
    offsets = [0, 1, 1, 2, 2, 2, 3]
    records = [
        audited(subject, time=start + timedelta(seconds=s), resource=f"customers/{i}") for i, s in enumerate(offsets)
    ]
    await write_through_trail(gateway_database, records)

    listed, tokens = await list_all(audit_stub, 2, subject=subject)

    assert len(tokens) == 4 and all(tokens[:3]) and tokens[3] == ""
    assert sorted(r.resource for r in listed) == sorted(r.resource for r in records)
    times = [r.time.ToDatetime(tzinfo=UTC) for r in listed]
    assert times == sorted(times, reverse=True)
    keys = [(r.time.ToDatetime(tzinfo=UTC), number(r)) for r in listed]
    assert keys == sorted(keys, reverse=True)
    assert all(re.fullmatch(r"auditRecords/[1-9][0-9]*", r.name) for r in listed)


async def test_a_listed_record_carries_every_field(gateway_database: Database, audit_stub: AuditServiceStub):
    subject = fresh_subject()
    record = audited(
        subject, roles=("agent", "supervisor"), outcome="FAILED_PRECONDITION", reason="INSUFFICIENT_POINTS"
    )
    await write_through_trail(gateway_database, [record])

    page = await audit_stub.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(subject=subject), timeout=5)

    [listed] = page.audit_records
    assert page.next_page_token == ""
    assert listed.time.ToDatetime(tzinfo=UTC) == record.time
    assert (
        listed.subject,
        listed.caller_kind,
        tuple(listed.roles),
        listed.tenant,
        listed.method,
        listed.resource,
        listed.outcome,
        listed.reason,
        listed.trace_id,
    ) == (
        record.subject,
        record.caller_kind,
        record.roles,
        record.tenant,
        record.method,
        record.resource,
        record.outcome,
        record.reason,
        record.trace_id,
    )


async def test_records_are_filtered_by_subject_method_and_outcome_each_alone_and_together(
    gateway_database: Database, audit_stub: AuditServiceStub
):
    subject, other_subject = fresh_subject(), fresh_subject()
    method, other_method = fresh_method(), fresh_method()
    records = {
        "mine-ok": audited(subject, method=method),
        "mine-denied": audited(subject, method=method, outcome="PERMISSION_DENIED", reason="NOT_YOUR_CUSTOMER"),
        "mine-other-method": audited(subject, method=other_method),
        "other-subject": audited(other_subject, method=method, outcome="PERMISSION_DENIED"),
    }
    await write_through_trail(gateway_database, list(records.values()))
    names = {record.resource: label for label, record in records.items()}

    async def labels(**filters: str) -> set[str]:
        listed, _ = await list_all(audit_stub, 50, **filters)
        return {names[r.resource] for r in listed}

    assert await labels(subject=subject) == {"mine-ok", "mine-denied", "mine-other-method"}
    assert await labels(method=method) == {"mine-ok", "mine-denied", "other-subject"}
    assert await labels(method=method, outcome="PERMISSION_DENIED") == {"mine-denied", "other-subject"}
    assert await labels(subject=subject, method=method, outcome="OK") == {"mine-ok"}
    assert await labels(subject=subject, outcome="UNAVAILABLE") == set()


async def test_a_page_token_used_with_other_filters_is_invalid_argument(
    gateway_database: Database, audit_stub: AuditServiceStub
):
    subject = fresh_subject()
    await write_through_trail(gateway_database, [audited(subject), audited(subject)])
    first = await audit_stub.ListAuditRecords(
        audit_pb2.ListAuditRecordsRequest(subject=subject, page_size=1), timeout=5
    )
    assert first.next_page_token

    for changed in ({"subject": fresh_subject()}, {"subject": subject, "outcome": "OK"}, {}):
        code, error = await failure(
            audit_stub.ListAuditRecords(
                audit_pb2.ListAuditRecordsRequest(page_size=1, page_token=first.next_page_token, **changed), timeout=5
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert isinstance(error, InvalidArgument)
        assert [v.field for v in error.violations] == ["page_token"]


NO_FILTERS = {"subject": "", "method": "", "outcome": ""}


@pytest.mark.parametrize(
    "page_token",
    [
        "not-a-token",
        next_page_token(["not-a-time", 1], NO_FILTERS),
        next_page_token([1], NO_FILTERS),
        next_page_token([10**30, 1], NO_FILTERS),
    ],
    ids=["garbled", "not-a-time", "no-number", "beyond-any-time"],
)
async def test_a_page_token_the_service_did_not_issue_is_invalid_argument(
    page_token: str, audit_stub: AuditServiceStub
):
    code, error = await failure(
        audit_stub.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(page_token=page_token), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error, InvalidArgument)
    assert [v.field for v in error.violations] == ["page_token"]


@pytest.mark.parametrize("page_size", [-1, 501])
async def test_a_page_size_out_of_range_is_invalid_argument_naming_it(page_size: int, audit_stub: AuditServiceStub):
    code, error = await failure(
        audit_stub.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(page_size=page_size), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error, InvalidArgument)
    assert [v.field for v in error.violations] == ["page_size"]


async def test_malformed_filters_are_invalid_argument_naming_each(audit_stub: AuditServiceStub):
    code, error = await failure(
        audit_stub.ListAuditRecords(audit_pb2.ListAuditRecordsRequest(method="EarnPoints", outcome="DENIED"), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error, InvalidArgument)
    assert [v.field for v in error.violations] == ["method", "outcome"]
