"""The gateway's audit trail: a record of every audited call (each mutation, each denial).

A record is logged at once on `crm.audit` (one JSON line per record, from the chassis' logging) and
queued in memory; a background writer appends the queue to the gateway database's `audit_records`
table in batches, one INSERT each, so that the request path never waits on the database. While the
database cannot be reached the writer keeps the records and retries with a bounded back-off; when
the queue is full the oldest records make room, and an ERROR line says how many were dropped (their
log lines remain). A batch whose COMMIT was lost in flight may be written twice; none is lost silently.
"""

import asyncio
import contextlib
import logging
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.background import MAX_FAILURE_BACKOFF_SECONDS
from chassis.database import Database
from chassis.errors import Violations, invalid_field
from chassis.names import ResourcePattern
from chassis.pagination import Page, PageRequest, SortKey
from gateway import audit_store

audit_log = logging.getLogger("crm.audit")
"""One INFO line per audited call, its fields under `audit`; nothing else is logged here."""
writer_log = logging.getLogger("crm.audit.writer")
"""The writer's own troubles: an unreachable database, records dropped or left unwritten."""

CALLER_KINDS = frozenset({"employee", "customer", "retailer", "anonymous"})
"""The kinds of caller the gateway tells apart."""
OUTCOMES = frozenset(code.name for code in grpc.StatusCode)
"""Every canonical gRPC code's name: `OK`, `PERMISSION_DENIED`, ..."""
AUDIT_RECORD = ResourcePattern("auditRecords/{audit_record}")
"""An audit record, named by the number it was stored under."""

_TRACE_ID = re.compile(r"(?:[0-9a-f]{32})?")
_METHOD = re.compile(r"/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The back-off doubles at most this many times (then MAX_FAILURE_BACKOFF_SECONDS holds), so that a long
# outage cannot overflow the float.
_MAX_DOUBLINGS = 16


@dataclass(frozen=True)
class AuditRecord:
    """One audited call: who called which method about which resource, and how it ended.

    It never holds personal data: callers and resources appear only by their ids (a customer as
    `customers/{id}`), never by name, phone number, birth date or anything else a request or an answer
    carried. Invalid values (a naive time, an unknown kind or outcome, a malformed trace id) raise
    ValueError at construction, where the gateway's code made them.
    """

    time: datetime
    """When the gateway decided the call; timezone-aware, kept in UTC."""
    subject: str
    """Who called: the employee's subject, `customers/{id}` for a customer, the retailer id for a partner;
    "" for an anonymous caller."""
    caller_kind: str
    """One of CALLER_KINDS: employee, customer, retailer or anonymous."""
    roles: tuple[str, ...]
    """The employee's roles at the time of the call; empty for other callers."""
    tenant: str
    """The retail chain of a partner caller; "" otherwise."""
    method: str
    """The full gRPC path, e.g. `/crm.loyalty.v1.LoyaltyService/EarnPoints`."""
    resource: str
    """The resource name the call was about; "" when it named none."""
    outcome: str
    """The call's gRPC code name (one of OUTCOMES), e.g. `OK` or `PERMISSION_DENIED`."""
    reason: str
    """The ErrorInfo reason of a failure, e.g. `NOT_YOUR_CUSTOMER`; "" for a success."""
    trace_id: str
    """The call's trace id, 32 lower-case hex digits, or "" when untraced."""
    record_id: uuid.UUID = field(default_factory=uuid.uuid4)
    """The record's own id: a batch written again after a lost commit acknowledgement stores each once."""

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("an audit record's time must carry a time zone")
        if self.caller_kind not in CALLER_KINDS:
            raise ValueError(f"caller_kind must be one of {sorted(CALLER_KINDS)}, got {self.caller_kind!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be a gRPC code name, got {self.outcome!r}")
        if not _TRACE_ID.fullmatch(self.trace_id):
            raise ValueError(f"trace_id must be 32 lower-case hex digits or empty, got {self.trace_id!r}")
        # Frozen: normalised in place once, before anyone can see the record.
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        object.__setattr__(self, "roles", tuple(self.roles))

    def log_fields(self) -> dict[str, object]:
        """The record as its `crm.audit` line carries it, ready for JSON."""
        return {
            "time": self.time.isoformat(),
            "subject": self.subject,
            "caller_kind": self.caller_kind,
            "roles": list(self.roles),
            "tenant": self.tenant,
            "method": self.method,
            "resource": self.resource,
            "outcome": self.outcome,
            "reason": self.reason,
            "trace_id": self.trace_id,
            "record_id": str(self.record_id),
        }


@dataclass(frozen=True)
class StoredAuditRecord:
    """An audit record as the database keeps it, with the number it was stored under."""

    id: int
    """Grows in the order records were stored (not quite their time order: batches interleave)."""
    record: AuditRecord
    """The record itself."""

    @property
    def name(self) -> str:
        """`auditRecords/{id}`."""
        return AUDIT_RECORD.format(self.id)


@dataclass(frozen=True)
class AuditFilter:
    """Which records a listing returns: those matching every filter given ("" matches all)."""

    subject: str = ""
    """Only this caller's records."""
    method: str = ""
    """Only records of this full gRPC method."""
    outcome: str = ""
    """Only records that ended with this gRPC code name."""

    def criteria(self) -> dict[str, str]:
        """The filters as a page token is bound to them."""
        return {"subject": self.subject, "method": self.method, "outcome": self.outcome}


def audit_filter(*, subject: str, method: str, outcome: str) -> AuditFilter:
    """A listing's filters, checked; INVALID_ARGUMENT naming every malformed one."""
    violations = Violations()
    if method and not _METHOD.fullmatch(method):
        violations.add("method", "must be a full gRPC method, e.g. /crm.loyalty.v1.LoyaltyService/EarnPoints")
    if outcome and outcome not in OUTCOMES:
        violations.add("outcome", "must be a gRPC code name, e.g. OK or PERMISSION_DENIED")
    violations.raise_if_any()
    return AuditFilter(subject=subject, method=method, outcome=outcome)


async def list_audit_records(
    session: AsyncSession, audit_filter: AuditFilter, page: PageRequest
) -> Page[StoredAuditRecord]:
    """A page of the records matching `audit_filter`, newest first (by time, then by number), each
    page read from where the last one ended (keyset, never OFFSET)."""
    rows = await audit_store.select_audit_records(
        session, audit_filter, before=_page_start(page), limit=page.fetch_size
    )
    return Page.cut([_stored(row) for row in rows], page, _sort_key, audit_filter.criteria())


class AuditTrail:
    """Keeps every audited call: a log line at once, a database row soon after (see the module).

    `record` is for the request path and never waits. `start` begins writing on the running loop: a
    batch every `flush_interval_seconds`, or at once when `max_batch` records wait. `stop` writes what
    is left. At most `max_buffered` records wait; beyond that the oldest are dropped.
    """

    def __init__(
        self,
        database: Database,
        *,
        flush_interval_seconds: float = 0.2,
        max_batch: int = 500,
        max_buffered: int = 100_000,
    ) -> None:
        if flush_interval_seconds <= 0:
            raise ValueError("flush_interval_seconds must be positive")
        if not 1 <= max_batch <= audit_store.MAX_ROWS_PER_INSERT:
            raise ValueError(f"max_batch must be between 1 and {audit_store.MAX_ROWS_PER_INSERT}")
        if max_buffered <= max_batch:
            # A batch in flight must leave room in the queue for the record that arrives meanwhile.
            raise ValueError("max_buffered must be greater than max_batch")
        self._database = database
        self._flush_interval = flush_interval_seconds
        self._max_batch = max_batch
        self._max_buffered = max_buffered
        self._queue: deque[AuditRecord] = deque()
        self._in_flight = 0
        self._dropped = 0
        self._failures = 0
        self._arrived = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def buffered(self) -> int:
        """Records not yet in the database (queued or in the batch being written)."""
        return len(self._queue) + self._in_flight

    @property
    def failures(self) -> int:
        """Batches the database failed to take in a row; 0 once one is written."""
        return self._failures

    def record(self, record: AuditRecord) -> None:
        """Logs `record` on `crm.audit` and queues it for the database, without waiting."""
        audit_log.info("call audited", extra={"audit": record.log_fields()})
        if self.buffered >= self._max_buffered:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(record)
        self._arrived.set()
        if len(self._queue) >= self._max_batch:
            self._batch_ready.set()

    def start(self) -> None:
        """Starts the writer on the running event loop (again after a `stop`)."""
        self._writer()

    async def stop(self, *, timeout_seconds: float = 10.0) -> None:
        """Writes every record still queued, then stops the writer. Records the database has not
        taken within `timeout_seconds` (it cannot be reached) stay unwritten, counted in an ERROR line."""
        task = self._writer()
        self._stopping = True
        self._arrived.set()
        self._batch_ready.set()
        done, _ = await asyncio.wait({task}, timeout=timeout_seconds)
        if not done:
            # Counted before cancelling: a batch cut off in flight counts as unwritten (unconfirmed).
            unwritten = self.buffered
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            writer_log.error(
                "%d audit records were not written: the database did not take them before the trail stopped",
                unwritten,
                extra={"unwritten": unwritten},
            )
        self._report_dropped()
        self._task = None

    def _writer(self) -> asyncio.Task[None]:
        """The running writer, started when there is none."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._write_until_stopped(), name="audit-writer")
        return self._task

    async def _write_until_stopped(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self._queue) < self._max_batch and not self._stopping:
                # Gather a batch for one interval, unless a full one is waiting sooner.
                self._batch_ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_ready.wait(), self._flush_interval)
            if not await self._write_batch():
                await asyncio.sleep(self._failure_backoff())

    async def _write_batch(self) -> bool:
        """Writes the oldest queued records, a batch at most; False (records kept) when that failed."""
        batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
        self._in_flight = len(batch)
        try:
            async with self._database.transaction() as session:
                await audit_store.insert_audit_records(session, batch)
        except Exception:  # noqa: BLE001 - whatever failed, the records are kept and the write retried
            # Back at the front, oldest first; records queued meanwhile left room for them (see record).
            self._queue.extendleft(reversed(batch))
            self._failures += 1
            if self._failures == 1:
                writer_log.warning("audit records not written; kept, retrying with back-off", exc_info=True)
            else:
                writer_log.debug("audit records not written again (%d in a row)", self._failures, exc_info=True)
            return False
        finally:
            self._in_flight = 0
            self._report_dropped()
        if self._failures:
            writer_log.info("audit records written again after %d failures", self._failures)
            self._failures = 0
        return True

    def _failure_backoff(self) -> float:
        doublings = min(self._failures - 1, _MAX_DOUBLINGS)
        return float(min(self._flush_interval * 2**doublings, MAX_FAILURE_BACKOFF_SECONDS))

    def _report_dropped(self) -> None:
        if self._dropped:
            writer_log.error(
                "dropped the %d oldest audit records: %d were waiting for the database, the most kept",
                self._dropped,
                self._max_buffered,
                extra={"dropped": self._dropped, "max_buffered": self._max_buffered},
            )
            self._dropped = 0


def _page_start(page: PageRequest) -> tuple[datetime, int] | None:
    """The (time, id) a page starts after, from its token; INVALID_ARGUMENT when the token holds else."""
    if not page.after:
        return None
    after = page.after
    if len(after) != 2 or not all(isinstance(value, int) and not isinstance(value, bool) for value in after):
        raise invalid_field("page_token", "is not a token this service issued")
    microseconds, number = after
    try:
        return _EPOCH + timedelta(microseconds=int(microseconds)), int(number)
    except OverflowError:
        raise invalid_field("page_token", "is not a token this service issued") from None


def _sort_key(stored: StoredAuditRecord) -> SortKey:
    # Whole microseconds since the epoch: exactly what timestamptz keeps, and JSON-safe in a token.
    return [(stored.record.time - _EPOCH) // timedelta(microseconds=1), stored.id]


def _stored(row: Row[Any]) -> StoredAuditRecord:
    return StoredAuditRecord(
        id=row.id,
        record=AuditRecord(
            time=row.time,
            subject=row.subject,
            caller_kind=row.caller_kind,
            roles=tuple(row.roles),
            tenant=row.tenant,
            method=row.method,
            resource=row.resource,
            outcome=row.outcome,
            reason=row.reason,
            trace_id=row.trace_id,
            record_id=row.record_id,
        ),
    )
