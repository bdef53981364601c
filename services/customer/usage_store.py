"""Usage data in the customer database, written in bulk: one statement per batch counts new
records, active and roaming days, monthly totals and areas together."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.usage import CheckedRecord


@dataclass(frozen=True)
class Line:
    """A line in service, by its number."""

    subscription_id: uuid.UUID
    customer_id: uuid.UUID


@dataclass(frozen=True)
class MonthRow:
    """One line-month of usage as stored."""

    subscription_id: uuid.UUID
    customer_id: uuid.UUID
    month: date
    on_net_minutes: float
    off_net_minutes: float
    international_minutes: float
    sms_count: int
    data_mb: float
    active_days: int
    roaming_days: int
    record_count: int
    areas: list[tuple[str, str, int, float]]


# Records of a batch in, counts of new records out. Ids first (sorted, so concurrent batches take
# locks in one order), then only the records counted for the first time feed days and totals.
_INGEST = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::date[], $5::float8[], $6::float8[], $7::float8[],
                         $8::int8[], $9::float8[], $10::bool[], $11::text[], $12::text[])
        AS r(record_id, subscription_id, customer_id, usage_date, on_net, off_net, international, sms, data,
             roaming, area, technology)
),
new_ids AS (
    INSERT INTO usage_record_ids (record_id, subscription_id, usage_date)
    SELECT record_id, subscription_id, usage_date FROM input ORDER BY record_id
    ON CONFLICT DO NOTHING
    RETURNING record_id
),
fresh AS (SELECT input.* FROM input JOIN new_ids USING (record_id)),
new_days AS (
    INSERT INTO usage_days (subscription_id, usage_date)
    SELECT DISTINCT subscription_id, usage_date FROM fresh ORDER BY 1, 2
    ON CONFLICT DO NOTHING
    RETURNING subscription_id, date_trunc('month', usage_date)::date AS month
),
new_roaming_days AS (
    INSERT INTO roaming_days (subscription_id, usage_date)
    SELECT DISTINCT subscription_id, usage_date FROM fresh WHERE roaming ORDER BY 1, 2
    ON CONFLICT DO NOTHING
    RETURNING subscription_id, date_trunc('month', usage_date)::date AS month
),
totals AS (
    SELECT subscription_id, customer_id, date_trunc('month', usage_date)::date AS month,
           sum(on_net) AS on_net, sum(off_net) AS off_net, sum(international) AS international,
           sum(sms) AS sms, sum(data) AS data, count(*) AS records
    FROM fresh GROUP BY 1, 2, 3
),
months AS (
    INSERT INTO monthly_usage AS m (subscription_id, customer_id, month, on_net_minutes, off_net_minutes,
        international_minutes, sms_count, data_mb, active_days, roaming_days, record_count, update_time, dirty)
    SELECT t.subscription_id, t.customer_id, t.month, t.on_net, t.off_net, t.international, t.sms, t.data,
           (SELECT count(*) FROM new_days d WHERE d.subscription_id = t.subscription_id AND d.month = t.month),
           (SELECT count(*) FROM new_roaming_days d WHERE d.subscription_id = t.subscription_id AND d.month = t.month),
           t.records, now(), true
    FROM totals t ORDER BY t.subscription_id, t.month
    ON CONFLICT (subscription_id, month) DO UPDATE SET
        on_net_minutes = m.on_net_minutes + excluded.on_net_minutes,
        off_net_minutes = m.off_net_minutes + excluded.off_net_minutes,
        international_minutes = m.international_minutes + excluded.international_minutes,
        sms_count = m.sms_count + excluded.sms_count,
        data_mb = m.data_mb + excluded.data_mb,
        active_days = m.active_days + excluded.active_days,
        roaming_days = m.roaming_days + excluded.roaming_days,
        record_count = m.record_count + excluded.record_count,
        update_time = now(),
        dirty = true
    RETURNING 1
),
areas AS (
    INSERT INTO monthly_usage_areas AS a (subscription_id, month, area, radio_technology, record_count, data_mb)
    SELECT subscription_id, date_trunc('month', usage_date)::date, area, technology, count(*), sum(data)
    FROM fresh GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (subscription_id, month, area, radio_technology) DO UPDATE SET
        record_count = a.record_count + excluded.record_count,
        data_mb = a.data_mb + excluded.data_mb
    RETURNING 1
)
SELECT (SELECT count(*) FROM new_ids) AS accepted, (SELECT count(*) FROM months) AS months,
       (SELECT count(*) FROM areas) AS areas
"""


async def raw_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session's transaction, for bulk statements."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection  # type: ignore[return-value]


async def lines_in_service(session: AsyncSession, msisdns: Sequence[str]) -> dict[str, Line]:
    """The line in service of each number that has one, in one query."""
    connection = await raw_connection(session)
    rows = await connection.fetch(
        "SELECT msisdn, id, customer_id FROM subscriptions WHERE msisdn = ANY($1::text[]) AND status <> 'TERMINATED'",
        list(msisdns),
    )
    return {row["msisdn"]: Line(row["id"], row["customer_id"]) for row in rows}


async def count_records(session: AsyncSession, records: Sequence[tuple[CheckedRecord, Line]]) -> int:
    """Counts the records not seen before into days, monthly totals and areas; returns how many."""
    if not records:
        return 0
    connection = await raw_connection(session)
    columns: list[list[Any]] = [[] for _ in range(12)]
    for record, line in records:
        for index, value in enumerate(
            (
                record.record_id,
                line.subscription_id,
                line.customer_id,
                record.usage_date,
                record.on_net_minutes,
                record.off_net_minutes,
                record.international_minutes,
                record.sms_count,
                record.data_mb,
                record.roaming,
                record.area,
                record.radio_technology,
            )
        ):
            columns[index].append(value)
    row = await connection.fetchrow(_INGEST, *columns)
    return int(row["accepted"]) if row else 0


async def months_of_line(session: AsyncSession, subscription_id: uuid.UUID, since: date) -> list[MonthRow]:
    """The line's months from `since` on, newest first, with their areas (most records first)."""
    rows = (
        await session.execute(
            text("SELECT * FROM monthly_usage WHERE subscription_id = :s AND month >= :since ORDER BY month DESC"),
            {"s": subscription_id, "since": since},
        )
    ).all()
    areas = (
        await session.execute(
            text(
                "SELECT month, area, radio_technology, record_count, data_mb FROM monthly_usage_areas "
                "WHERE subscription_id = :s AND month >= :since ORDER BY month, record_count DESC, area"
            ),
            {"s": subscription_id, "since": since},
        )
    ).all()
    by_month: dict[date, list[tuple[str, str, int, float]]] = {}
    for area in areas:
        by_month.setdefault(area.month, []).append((area.area, area.radio_technology, area.record_count, area.data_mb))
    return [_month(row, by_month.get(row.month, [])) for row in rows]


async def take_dirty_months(session: AsyncSession, limit: int) -> list[MonthRow]:
    """Changed line-months not yet announced, locked for this transaction (other publishers skip them)."""
    rows = (
        await session.execute(
            text(
                "SELECT * FROM monthly_usage WHERE dirty ORDER BY subscription_id, month "
                "LIMIT :limit FOR UPDATE SKIP LOCKED"
            ),
            {"limit": limit},
        )
    ).all()
    if not rows:
        return []
    areas = (
        await session.execute(
            text(
                "SELECT a.subscription_id, a.month, a.area, a.radio_technology, a.record_count, a.data_mb "
                "FROM monthly_usage_areas a JOIN unnest(CAST(:subs AS uuid[]), CAST(:months AS date[])) "
                "AS k(subscription_id, month) USING (subscription_id, month) "
                "ORDER BY a.record_count DESC, a.area"
            ),
            {"subs": [r.subscription_id for r in rows], "months": [r.month for r in rows]},
        )
    ).all()
    by_key: dict[tuple[uuid.UUID, date], list[tuple[str, str, int, float]]] = {}
    for area in areas:
        by_key.setdefault((area.subscription_id, area.month), []).append(
            (area.area, area.radio_technology, area.record_count, area.data_mb)
        )
    await session.execute(
        text(
            "UPDATE monthly_usage SET dirty = false FROM unnest(CAST(:subs AS uuid[]), CAST(:months AS date[])) "
            "AS k(subscription_id, month) "
            "WHERE monthly_usage.subscription_id = k.subscription_id AND monthly_usage.month = k.month"
        ),
        {"subs": [r.subscription_id for r in rows], "months": [r.month for r in rows]},
    )
    return [_month(row, by_key.get((row.subscription_id, row.month), [])) for row in rows]


def _month(row: Any, areas: list[tuple[str, str, int, float]]) -> MonthRow:
    return MonthRow(
        subscription_id=row.subscription_id,
        customer_id=row.customer_id,
        month=row.month,
        on_net_minutes=row.on_net_minutes,
        off_net_minutes=row.off_net_minutes,
        international_minutes=row.international_minutes,
        sms_count=row.sms_count,
        data_mb=row.data_mb,
        active_days=row.active_days,
        roaming_days=row.roaming_days,
        record_count=row.record_count,
        areas=areas,
    )
