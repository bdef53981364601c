"""Usage tables and queries, written in bulk: batches of records are stored by `batch_store`; the
folder later adds them into monthly totals, active and roaming days and areas, in large chunks."""

import uuid
from datetime import date

import asyncpg
from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer.usage.rules import CustomerMonth, LineMonth

# Folds a chunk of final records (inserted by transactions below the horizon $2, after the cursor)
# into monthly totals, day masks and areas; returns how many and where the chunk ended.
_FOLD = """
WITH chunk AS (
    SELECT * FROM usage_records
    WHERE ingest_xid >= $1::text::xid8 AND ingest_xid < $2::text::xid8
      AND (ingest_xid, seq) > ($3::text::xid8, $4::bigint)
    ORDER BY ingest_xid, seq LIMIT $5
),
totals AS (
    SELECT subscription_id, customer_id, date_trunc('month', usage_date)::date AS month,
           sum(on_net_minutes) AS on_net, sum(off_net_minutes) AS off_net,
           sum(international_minutes) AS international, sum(sms_count) AS sms, sum(data_mb) AS data,
           count(*) AS records,
           bit_or(1 << (extract(day FROM usage_date)::int - 1)) AS active_mask,
           coalesce(bit_or(1 << (extract(day FROM usage_date)::int - 1)) FILTER (WHERE roaming), 0) AS roaming_mask
    FROM chunk GROUP BY 1, 2, 3
),
months AS (
    INSERT INTO monthly_usage AS m (subscription_id, customer_id, month, on_net_minutes, off_net_minutes,
        international_minutes, sms_count, data_mb, active_day_mask, roaming_day_mask, active_days, roaming_days,
        record_count, update_time, dirty)
    SELECT subscription_id, customer_id, month, on_net, off_net, international, sms, data, active_mask,
           roaming_mask, bit_count(active_mask::bit(32)), bit_count(roaming_mask::bit(32)), records, now(), true
    FROM totals ORDER BY subscription_id, month
    ON CONFLICT (subscription_id, month) DO UPDATE SET
        on_net_minutes = m.on_net_minutes + excluded.on_net_minutes,
        off_net_minutes = m.off_net_minutes + excluded.off_net_minutes,
        international_minutes = m.international_minutes + excluded.international_minutes,
        sms_count = m.sms_count + excluded.sms_count,
        data_mb = m.data_mb + excluded.data_mb,
        active_day_mask = m.active_day_mask | excluded.active_day_mask,
        roaming_day_mask = m.roaming_day_mask | excluded.roaming_day_mask,
        active_days = bit_count((m.active_day_mask | excluded.active_day_mask)::bit(32)),
        roaming_days = bit_count((m.roaming_day_mask | excluded.roaming_day_mask)::bit(32)),
        record_count = m.record_count + excluded.record_count,
        update_time = now(),
        dirty = true
    RETURNING 1
),
areas AS (
    INSERT INTO monthly_usage_areas AS a (subscription_id, month, area, radio_technology, record_count, data_mb)
    SELECT subscription_id, date_trunc('month', usage_date)::date, area, radio_technology, count(*), sum(data_mb)
    FROM chunk
    -- Where an erased customer's lines were used is personal data: it is not kept, even when folded late.
    WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = chunk.customer_id AND c.erase_time IS NOT NULL)
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (subscription_id, month, area, radio_technology) DO UPDATE SET
        record_count = a.record_count + excluded.record_count,
        data_mb = a.data_mb + excluded.data_mb
    RETURNING 1
),
last AS (SELECT ingest_xid, seq FROM chunk ORDER BY ingest_xid DESC, seq DESC LIMIT 1)
SELECT (SELECT count(*) FROM chunk) AS folded, (SELECT ingest_xid::text FROM last) AS last_xid,
       (SELECT seq FROM last) AS last_seq, (SELECT count(*) FROM months) + (SELECT count(*) FROM areas) AS written
"""
FOLD_CHUNK = 20_000


async def raw_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session's transaction, for bulk statements.

    SQLAlchemy opens the driver's transaction lazily, at the session's first statement; one is sent
    first so that what goes straight to the driver is inside the transaction, not autocommitted.
    """
    connection = await session.connection()
    await connection.execute(text("SELECT 1"))
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection  # type: ignore[assignment]  # the asyncpg dialect's connection
    if not driver.is_in_transaction():
        raise RuntimeError("bulk statements must run inside the session's transaction")
    return driver


async def fold_chunk(session: AsyncSession) -> int:
    """Folds the next chunk of final records into the profiles, moving the folder's cursor in the
    same transaction (so each record is folded exactly once); returns how many records it folded.

    A record is final once every transaction that began before it has ended: then no record can still
    appear below it. The horizon is the oldest transaction still running; a pass folds every record of
    the transactions between the previous horizon and this one, in chunks.
    """
    connection = await raw_connection(session)
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('usage-folder'))")
    # The chunk is read in fold order from the partitions' indexes, merged, not by sorting every pending
    # record: without fresh statistics the planner takes a backlog of any size for a few rows.
    await connection.execute("SET LOCAL enable_sort = off")
    [state] = await connection.fetch(
        "SELECT done_below::text AS done_below, after_xid::text AS after_xid, after_seq, "
        "pg_snapshot_xmin(pg_current_snapshot())::text AS horizon FROM usage_fold_state WHERE id = 1"
    )
    [row] = await connection.fetch(
        _FOLD, state["done_below"], state["horizon"], state["after_xid"], state["after_seq"], FOLD_CHUNK
    )
    if row["folded"] < FOLD_CHUNK:
        # The pass is complete: every record below the horizon is folded.
        await connection.execute(
            "UPDATE usage_fold_state SET done_below = $1::text::xid8, after_xid = '0', after_seq = 0 WHERE id = 1",
            state["horizon"],
        )
    else:
        await connection.execute(
            "UPDATE usage_fold_state SET after_xid = $1::text::xid8, after_seq = $2 WHERE id = 1",
            row["last_xid"],
            row["last_seq"],
        )
    return int(row["folded"])


async def months_of_line(session: AsyncSession, subscription_id: uuid.UUID, since: date) -> list[LineMonth]:
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
    return [_month(row._mapping, by_month.get(row.month, [])) for row in rows]


# Takes up to $1 changed line-months not yet announced, locked (other publishers skip them), clears
# their mark and returns each with its areas (most records first) as arrays, in one round trip. The
# months and their areas are read as the statement found them, before the mark was cleared.
_TAKE_DIRTY = """
WITH taken AS (
    SELECT subscription_id, customer_id, month, on_net_minutes, off_net_minutes, international_minutes,
           sms_count, data_mb, active_days, roaming_days, record_count
    FROM monthly_usage WHERE dirty ORDER BY subscription_id, month LIMIT $1 FOR UPDATE SKIP LOCKED
),
cleared AS (
    UPDATE monthly_usage m SET dirty = false FROM taken t
    WHERE m.subscription_id = t.subscription_id AND m.month = t.month
)
SELECT t.*, a.areas, a.technologies, a.counts, a.data
FROM taken t LEFT JOIN LATERAL (
    SELECT array_agg(area ORDER BY record_count DESC, area) AS areas,
           array_agg(radio_technology ORDER BY record_count DESC, area) AS technologies,
           array_agg(record_count ORDER BY record_count DESC, area) AS counts,
           array_agg(data_mb ORDER BY record_count DESC, area) AS data
    FROM monthly_usage_areas a WHERE a.subscription_id = t.subscription_id AND a.month = t.month
) a ON true
ORDER BY t.subscription_id, t.month
"""


async def take_dirty_months(session: AsyncSession, limit: int) -> list[LineMonth]:
    """Changed line-months not yet announced, locked for this transaction (other publishers skip them)
    and no longer marked changed once it commits."""
    connection = await raw_connection(session)
    rows = await connection.fetch(_TAKE_DIRTY, limit)
    # A month without areas has NULL for each array (array_agg of no rows).
    columns = ("areas", "technologies", "counts", "data")
    return [_month(row, list(zip(*(row[c] or () for c in columns), strict=True))) for row in rows]


def _month(row: RowMapping | asyncpg.Record, areas: list[tuple[str, str, int, float]]) -> LineMonth:
    """A stored line-month of its row's columns (a SQLAlchemy row's mapping or an asyncpg record)."""
    return LineMonth(
        subscription_id=row["subscription_id"],
        customer_id=row["customer_id"],
        month=row["month"],
        on_net_minutes=row["on_net_minutes"],
        off_net_minutes=row["off_net_minutes"],
        international_minutes=row["international_minutes"],
        sms_count=row["sms_count"],
        data_mb=row["data_mb"],
        active_days=row["active_days"],
        roaming_days=row["roaming_days"],
        record_count=row["record_count"],
        areas=areas,
    )


async def customer_months(
    session: AsyncSession, customer_id: uuid.UUID, before: date, count: int
) -> list[CustomerMonth]:
    """The customer's usage over all lines in the `count` months before `before`, newest first."""
    rows = await session.execute(
        text(
            """
            SELECT month, sum(on_net_minutes + off_net_minutes + international_minutes) AS voice,
                   sum(on_net_minutes) AS on_net, sum(data_mb) AS data, max(roaming_days) AS roaming
            FROM monthly_usage
            WHERE customer_id = :c AND month < :before
            GROUP BY month ORDER BY month DESC LIMIT :months
            """
        ),
        {"c": customer_id, "before": before, "months": count},
    )
    return [CustomerMonth(r.month, float(r.voice), float(r.on_net), float(r.data), int(r.roaming)) for r in rows]


async def forget_locations(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Removes where the customer's lines were used (personal location data), found through their
    monthly totals (every area row belongs to one); the totals stay, anonymous."""
    await session.execute(
        text(
            "DELETE FROM monthly_usage_areas a USING monthly_usage m "
            "WHERE m.customer_id = :c AND a.subscription_id = m.subscription_id AND a.month = m.month"
        ),
        {"c": customer_id},
    )
