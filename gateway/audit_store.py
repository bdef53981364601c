"""The gateway database's audit table: batches of records written with one INSERT, pages read newest
first by keyset from the index of the filter given, and the migrations of the gateway database.

A batch goes as one array per column into one fixed statement, so that the statement is prepared once
whatever the batch's size (a multi-row VALUES would be a new statement to compile and plan for every
size, a cost the profile of the gateway showed on every audited call).

The table is append-only (triggers refuse UPDATE, DELETE and TRUNCATE, migration 0001).
"""

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, DateTime, MetaData, Row, Table, Text, Uuid, literal, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.database import migrate

if TYPE_CHECKING:
    # Types only: the trail in gateway.audit writes through this module.
    from gateway.audit import AuditFilter, AuditRecord

MIGRATIONS = Path(__file__).parent / "migrations"
"""The gateway database's revisions, run in the chassis' shared Alembic environment."""
MAX_TEXT_CHARS = 512
"""Longest text kept in a column; longer text is cut and ends in "…" (an index entry holds ~2.7 kB)."""
MAX_ROWS_PER_INSERT = 2_900
"""Most records one INSERT carries: a bound on one statement's work, so that a backlog is written in
transactions of bounded size."""

metadata = MetaData()

audit_records = Table(
    "audit_records",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("subject", Text, nullable=False),
    Column("caller_kind", Text, nullable=False),
    Column("roles", ARRAY(Text), nullable=False),
    Column("tenant", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("trace_id", Text, nullable=False),
    Column("record_id", Uuid, nullable=False, unique=True),
)


def migrate_gateway_database(url: str) -> None:
    """Brings the gateway's database at `url` to the newest schema."""
    migrate(url, MIGRATIONS)


async def insert_audit_records(session: AsyncSession, records: "Sequence[AuditRecord]") -> None:
    """Appends `records` in the caller's transaction, with one multi-row INSERT."""
    if len(records) > MAX_ROWS_PER_INSERT:
        raise ValueError(f"at most {MAX_ROWS_PER_INSERT} audit records go in one INSERT, got {len(records)}")
    if records:
        rows = [_columns(record) for record in records]
        await session.execute(_INSERT, {column: [row[column] for row in rows] for column in rows[0]})


async def select_audit_records(
    session: AsyncSession, audit_filter: "AuditFilter", *, before: tuple[datetime, int] | None, limit: int
) -> Sequence[Row[Any]]:
    """Up to `limit` rows matching every filter given, newest first (time, then id), strictly older
    than the (time, id) `before` when given."""
    query = select(audit_records)
    if audit_filter.subject:
        query = query.where(audit_records.c.subject == storable_text(audit_filter.subject))
    if audit_filter.method:
        query = query.where(audit_records.c.method == audit_filter.method)
    if audit_filter.outcome:
        query = query.where(audit_records.c.outcome == audit_filter.outcome)
    if before is not None:
        time, number = before
        # A row comparison, which the (…, time DESC, id DESC) indexes serve as one range.
        start = tuple_(literal(time, DateTime(timezone=True)), literal(number, BigInteger))
        query = query.where(tuple_(audit_records.c.time, audit_records.c.id) < start)
    query = query.order_by(audit_records.c.time.desc(), audit_records.c.id.desc()).limit(limit)
    return (await session.execute(query)).all()


def storable_text(text: str) -> str:
    """`text` as PostgreSQL can keep it and an index can hold it: NUL and unpaired surrogates (which a
    token's JSON may carry) replaced, and cut to MAX_TEXT_CHARS. A filter is read the same way, so it
    finds what was stored."""
    kept = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return kept if len(kept) <= MAX_TEXT_CHARS else kept[: MAX_TEXT_CHARS - 1] + "…"


# Roles go as one JSON array per record, since a column of arrays would be one two-dimensional array
# that unnest flattens. Rows are numbered in the batch's order, the order their ids are drawn in. A
# batch retried after its commit was lost on the way back is stored once.
_INSERT = text(
    """
    INSERT INTO audit_records (time, subject, caller_kind, roles, tenant, method, resource, outcome, reason,
        trace_id, record_id)
    SELECT time, subject, caller_kind, ARRAY(SELECT jsonb_array_elements_text(roles::jsonb)), tenant, method,
           resource, outcome, reason, trace_id, record_id
    FROM unnest(CAST(:time AS timestamptz[]), CAST(:subject AS text[]), CAST(:caller_kind AS text[]),
                CAST(:roles AS text[]), CAST(:tenant AS text[]), CAST(:method AS text[]), CAST(:resource AS text[]),
                CAST(:outcome AS text[]), CAST(:reason AS text[]), CAST(:trace_id AS text[]),
                CAST(:record_id AS uuid[]))
         WITH ORDINALITY AS batch (time, subject, caller_kind, roles, tenant, method, resource, outcome, reason,
                                   trace_id, record_id, position)
    ORDER BY position
    ON CONFLICT (record_id) DO NOTHING
    """
)


def _columns(record: "AuditRecord") -> dict[str, object]:
    return {
        "time": record.time,
        "subject": storable_text(record.subject),
        "caller_kind": record.caller_kind,
        "roles": json.dumps([storable_text(role) for role in record.roles]),
        "tenant": storable_text(record.tenant),
        "method": storable_text(record.method),
        "resource": storable_text(record.resource),
        "outcome": record.outcome,
        "reason": storable_text(record.reason),
        "trace_id": record.trace_id,
        "record_id": record.record_id,
    }
