"""The store checks a whole batch of usage records at once in SQL; the plain-Python rules
(`rules.check_batch` and `IngestTally.count_batch`) are the reference. Random batches of odd records
(bad dates, NaN and negative amounts, unknown technologies, long or empty ids, numbers in national
format, numbers of lines out of service, NUL and Unicode in text, repeated keys) are stored twice
against a real PostgreSQL, in a transaction rolled back afterwards: every count, refusal and reason,
and every stored value, must be what the rules say.

Hypothesis drives the examples synchronously, so it runs in a worker thread and hands each batch to
the test's event loop.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from chassis.database import async_url
from services.customer.usage import batch_store
from services.customer.usage.rules import (
    IngestTally,
    RecordChecks,
    Rejection,
    ReportedFields,
    ReportedRecord,
    check_batch,
    stage_batch,
)

TODAY = date(2026, 11, 23)
CHECKS = RecordChecks("UZ", TODAY, TODAY - timedelta(days=90))
IN_SERVICE = ["+998901110001", "+998901110002"]
TERMINATED = "+998901110003"
NUMBERS = [
    *IN_SERVICE,
    TERMINATED,
    "90 111 00 01",  # national format of a line in service
    "+998 90 111-00-02",
    "+998901110001\x00",  # the phone-number library reads past the NUL
    "+998911234567",  # valid, no line
    "+٩٩٨٩٠١١١٠٠٠١",  # Arabic-Indic digits: E.164 to the pattern, no line has it
    "12",
    "",
    "+0123456789",
]
LINES_SQL = """
INSERT INTO customers (id, party_type, given_name, family_name, contact_media, phone_numbers, region_key,
    search_key, retailer_id, status, create_time, creator, update_time, updater, version)
VALUES (:customer, 'individual', 'Check', 'Line', '[]', '{}', '', 'check line', '', 'ACTIVE', now(), 'tests', now(),
    'tests', 1);
INSERT INTO subscriptions (id, customer_id, msisdn, tariff_plan_id, activation_date, status, purpose, home_region,
    create_time, update_time, version)
VALUES (gen_random_uuid(), :customer, :msisdn, 'plans/uz-start', current_date, :status, 'PERSONAL', '', now(), now(), 1)
"""

int32 = st.integers(-(2**31), 2**31 - 1)
near_days = st.integers(-95, 3).map(lambda n: TODAY + timedelta(days=n))
record_ids = st.one_of(
    st.sampled_from(["a", "b", "c", ""]),
    st.integers(127, 129).map(lambda n: "x" * n),
    st.text(max_size=8),
)
amounts = st.one_of(st.sampled_from([0.0, -0.0, 1.5]), st.floats())
areas = st.one_of(st.sampled_from(["Toshkent", "  Samarqand\u3000", "", " \t", "Х" * 210]), st.text(max_size=12))
technologies = st.one_of(st.integers(-1, 5), int32)


@st.composite
def reported_fields(draw: st.DrawFn) -> ReportedFields:
    if draw(st.booleans()):
        day = draw(near_days)
        year, month, day_of_month = day.year, day.month, day.day
    else:
        year = draw(st.one_of(st.sampled_from([0, 1, 2026, 9999, 10000]), int32))
        month, day_of_month = draw(st.one_of(st.integers(-1, 13), int32)), draw(st.one_of(st.integers(-1, 32), int32))
    return (
        draw(record_ids),
        draw(st.one_of(st.sampled_from(NUMBERS), st.text(max_size=16))),
        year,
        month,
        day_of_month,
        draw(amounts),
        draw(amounts),
        draw(amounts),
        draw(st.one_of(st.integers(0, 10), st.integers(-(2**63), 2**63 - 1))),
        draw(amounts),
        draw(st.booleans()),
        draw(areas),
        draw(technologies),
    )


batches = st.lists(reported_fields(), max_size=25)


def expected_tally(rows: list[ReportedFields], *, replayed: bool) -> IngestTally:
    """The rules' own count of the batch, stored for the first time or again."""
    checked = check_batch(
        [ReportedRecord(*row) for row in rows],
        default_region=CHECKS.default_region,
        today=CHECKS.today,
        kept_since=CHECKS.kept_since,
    )
    tally = IngestTally()
    stored = 0 if replayed else sum(record.msisdn in IN_SERVICE for record in checked.records)
    unknown = {record.msisdn for record in checked.records} - set(IN_SERVICE)
    tally.count_batch(checked, stored=stored, unknown_msisdns=unknown)
    return tally


def expected_rows(rows: list[ReportedFields]) -> list[tuple[object, ...]]:
    checked = check_batch(
        [ReportedRecord(*row) for row in rows],
        default_region=CHECKS.default_region,
        today=CHECKS.today,
        kept_since=CHECKS.kept_since,
    )
    return sorted((tuple(r) for r in checked.records if r.msisdn in IN_SERVICE), key=repr)


@pytest.fixture(scope="module")
async def lines_engine(migrated_database_url: Callable[[str], str]) -> AsyncIterator[AsyncEngine]:
    """A customer database with two lines in service and one terminated."""
    engine = create_async_engine(async_url(migrated_database_url("usage_checks")))
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM subscriptions"))
        for msisdn, status in [(IN_SERVICE[0], "ACTIVE"), (IN_SERVICE[1], "ACTIVE"), (TERMINATED, "TERMINATED")]:
            values = {"customer": uuid.uuid4(), "msisdn": msisdn, "status": status}
            for statement in LINES_SQL.split(";"):
                await connection.execute(text(statement), values)
    yield engine
    await engine.dispose()


async def store_twice(
    engine: AsyncEngine, rows: list[ReportedFields]
) -> tuple[IngestTally, IngestTally, list[tuple[object, ...]]]:
    """Stores the batch, then again, in one transaction that is rolled back; the two tallies and the
    records stored, as CheckedRecord fields."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            session = AsyncSession(bind=connection)
            tallies = []
            for _ in range(2):
                tally = IngestTally()
                stored = await batch_store.store_batch(session, stage_batch(rows, CHECKS), CHECKS)
                tally.count_stored(rows, stored, CHECKS)
                tallies.append(tally)
            found = await session.execute(
                text(
                    "SELECT u.record_id, s.msisdn, u.usage_date, u.on_net_minutes, u.off_net_minutes, "
                    "u.international_minutes, u.sms_count, u.data_mb, u.roaming, u.area, u.radio_technology "
                    "FROM usage_records u JOIN subscriptions s ON s.id = u.subscription_id"
                )
            )
            stored_rows = sorted((tuple(row) for row in found), key=repr)
        finally:
            await transaction.rollback()
    return tallies[0], tallies[1], stored_rows


async def test_the_store_counts_refuses_and_stores_exactly_as_the_rules_do(lines_engine: AsyncEngine) -> None:
    loop = asyncio.get_running_loop()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batches)
    def stored_as_the_rules_say(rows: list[ReportedFields]) -> None:
        first, again, stored = asyncio.run_coroutine_threadsafe(store_twice(lines_engine, rows), loop).result(60)
        assert first == expected_tally(rows, replayed=False)
        assert again == expected_tally(rows, replayed=True)
        assert stored == expected_rows(rows)

    await asyncio.to_thread(stored_as_the_rules_say)


def outcome_of(row: ReportedFields) -> str:
    outcome = CHECKS.check(ReportedRecord(*row))
    return outcome.reason if isinstance(outcome, Rejection) else "ACCEPTED"


@pytest.mark.parametrize(
    "outcome",
    ["ACCEPTED", "MISSING_RECORD_ID", "INVALID_MSISDN", "INVALID_DATE", "FUTURE_DATE", "EXPIRED_DATE", "INVALID_VALUE"],
)
def test_the_examples_reach_every_outcome(outcome: str) -> None:
    """Else the property above would prove little."""
    find(reported_fields(), lambda row: outcome_of(row) == outcome, settings=settings(max_examples=5000, database=None))
