"""Stores a batch of reported records at once, the hot path of ingestion: the batch goes to a staging
table with binary COPY, then one statement applies the record rules to every record (the rules of
`rules.check_record`, written in SQL), keeps each key once, matches numbers to lines in service and
stores the records not seen before. Python touches each record only to hand it over."""

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from chassis.errors import Unavailable
from services.customer.usage.rules import (
    MAX_AREA_LENGTH,
    MAX_RECORD_ID_LENGTH,
    RADIO_TECHNOLOGIES,
    UNKNOWN,
    WHITESPACE,
    RecordChecks,
    StagedBatch,
    StoredBatch,
)
from services.customer.usage.store import raw_connection

# One staging table per connection, emptied at every commit (and here, for a second batch in one
# transaction); `position` numbers the batch's records from 0 in the order COPY sends them, which is
# the batch's order.
_STAGING = """
SET LOCAL client_min_messages = warning;
CREATE TEMP SEQUENCE IF NOT EXISTS usage_batch_position MINVALUE 0;
CREATE TEMP TABLE IF NOT EXISTS usage_batch (
    position bigint NOT NULL DEFAULT nextval('usage_batch_position'),
    record_id text NOT NULL,
    msisdn text NOT NULL,
    year integer NOT NULL,
    month integer NOT NULL,
    day integer NOT NULL,
    on_net double precision NOT NULL,
    off_net double precision NOT NULL,
    international double precision NOT NULL,
    sms bigint NOT NULL,
    data double precision NOT NULL,
    roaming boolean NOT NULL,
    area text NOT NULL,
    technology integer NOT NULL
) ON COMMIT DELETE ROWS;
DELETE FROM usage_batch;
SELECT setval('usage_batch_position', 0, false);
"""
_STAGED_COLUMNS = [
    "record_id",
    "msisdn",
    "year",
    "month",
    "day",
    "on_net",
    "off_net",
    "international",
    "sms",
    "data",
    "roaming",
    "area",
    "technology",
]
"""The staging table's columns in the order of `ReportedFields`."""

# Each line of `plausible` and `usage_date` is a rule of check_record, whose order only picks the
# reason: here only whether a record passes matters (the reasons of refused records are read from the
# rules). Amounts: NaN sorts above infinity in PostgreSQL. Records are stored sorted so that
# concurrent batches take the key's locks in one order. `{on_conflict}` is what becomes of a record
# stored before (see `store_batch`).
_STORE = """
WITH staged AS (
    SELECT b.position, b.record_id,
           CASE WHEN n.raw IS NULL THEN b.msisdn ELSE n.e164 END AS msisdn,
           CASE WHEN b.year BETWEEN 1 AND 9999 AND b.month BETWEEN 1 AND 12 AND b.day BETWEEN 1 AND
                     CASE WHEN b.month = 2 THEN 28 + (b.year % 4 = 0 AND (b.year % 100 <> 0 OR b.year % 400 = 0))::int
                          WHEN b.month IN (4, 6, 9, 11) THEN 30 ELSE 31 END
                THEN make_date(b.year, b.month, b.day) END AS usage_date,
           b.on_net, b.off_net, b.international, b.sms, b.data, b.roaming,
           coalesce(nullif(left(btrim(b.area, $5), $8), ''), $9) AS area,
           coalesce(($6::text[])[b.technology], $9) AS technology,
           length(b.record_id) BETWEEN 1 AND $7
           AND (n.raw IS NULL OR n.e164 IS NOT NULL)
           AND b.on_net >= 0 AND b.on_net < 'Infinity'
           AND b.off_net >= 0 AND b.off_net < 'Infinity'
           AND b.international >= 0 AND b.international < 'Infinity'
           AND b.data >= 0 AND b.data < 'Infinity'
           AND b.sms >= 0
           AND (b.technology = 0 OR ($6::text[])[b.technology] IS NOT NULL) AS plausible
    FROM usage_batch b LEFT JOIN unnest($1::text[], $2::text[]) AS n(raw, e164) ON n.raw = b.msisdn
),
checked AS (
    SELECT *, coalesce(plausible AND usage_date BETWEEN $4 AND $3, false) AS passed FROM staged
),
firsts AS (
    SELECT DISTINCT ON (record_id, usage_date) * FROM checked WHERE passed ORDER BY record_id, usage_date, position
),
matched AS (
    SELECT f.*, s.id AS subscription_id, s.customer_id
    FROM firsts f JOIN subscriptions s ON s.msisdn = f.msisdn AND s.status <> 'TERMINATED'
),
stored AS (
    INSERT INTO usage_records (record_id, subscription_id, customer_id, usage_date, on_net_minutes, off_net_minutes,
        international_minutes, sms_count, data_mb, roaming, area, radio_technology)
    SELECT record_id, subscription_id, customer_id, usage_date, on_net, off_net, international, sms, data, roaming,
           area, technology
    FROM matched ORDER BY record_id, usage_date
    {on_conflict}
    RETURNING 1
)
SELECT (SELECT count(*) FROM stored) AS stored,
       ARRAY(SELECT position FROM checked WHERE NOT passed ORDER BY position) AS refused,
       ARRAY(SELECT f.position FROM firsts f WHERE NOT EXISTS (SELECT FROM matched m WHERE m.position = f.position)
             ORDER BY f.position) AS unmatched,
       (SELECT count(*) FROM firsts) AS passed,
       (SELECT count(*) FROM checked WHERE passed) AS passed_with_repeats
"""
_STORE_NEW = _STORE.format(on_conflict="")
"""Stores every record that passes; a record stored before is a unique violation."""
_STORE_SKIPPING_STORED = _STORE.format(on_conflict="ON CONFLICT (record_id, usage_date) DO NOTHING")
"""Stores the records that pass and were not stored before, skipping the others."""
# Labels by code from 1, None where a code has none: `labels[code]` is SQL's RADIO_TECHNOLOGIES.get(code).
_TECHNOLOGY_LABELS = [RADIO_TECHNOLOGIES.get(code) for code in range(1, max(RADIO_TECHNOLOGIES) + 1)]


async def store_batch(session: AsyncSession, batch: StagedBatch, checks: RecordChecks) -> StoredBatch:
    """Checks the batch's records against `checks` and stores those of lines in service not seen
    before, in the session's transaction; returns what became of each record."""
    if not batch.rows:
        return StoredBatch(stored=0, refused=[], unmatched=[], passed=0, repeats=0)
    connection = await raw_connection(session)
    await connection.execute(_STAGING)
    await connection.copy_records_to_table("usage_batch", records=batch.rows, columns=_STAGED_COLUMNS)
    arguments = (
        list(batch.numbers),
        list(batch.numbers.values()),
        checks.today,
        checks.kept_since,
        WHITESPACE,
        _TECHNOLOGY_LABELS,
        MAX_RECORD_ID_LENGTH,
        MAX_AREA_LENGTH,
        UNKNOWN,
    )
    try:
        try:
            # Nearly every batch is new records: a plain insert costs PostgreSQL about a quarter less
            # than one checking each record for a conflict first. A batch repeating a stored record (a
            # retry, or another stream's copy, waited for until it commits) undoes only this savepoint
            # and is stored again skipping what is stored; the key stays the one guard either way.
            async with connection.transaction():
                [row] = await connection.fetch(_STORE_NEW, *arguments)
        except asyncpg.UniqueViolationError:
            [row] = await connection.fetch(_STORE_SKIPPING_STORED, *arguments)
    except asyncpg.CheckViolationError as error:
        if "no partition" not in str(error):
            raise
        # The day's partition is made ahead by the background upkeep; a retry finds it.
        raise Unavailable("USAGE_DAY_NOT_READY", "a day of the batch has no partition yet; retry shortly") from error
    return StoredBatch(
        stored=int(row["stored"]),
        refused=list(row["refused"]),
        unmatched=list(row["unmatched"]),
        passed=int(row["passed"]),
        repeats=int(row["passed_with_repeats"]) - int(row["passed"]),
    )
