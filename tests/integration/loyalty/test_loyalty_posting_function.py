"""The database function that writes the API's earnings, goodwill and redemptions in one statement:
the protobuf fields it adds to the service's messages, the events it announces, the request ids it
gives back when it refuses, the qualification window it moves, and its plans on a long history."""

import random
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chassis.clock import ManualClock
from chassis.database import Database, async_url
from chassis.settings import Environment
from crm.loyalty.v1 import events_pb2, loyalty_pb2, loyalty_service_pb2, program_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from services.loyalty import ledger, store
from services.loyalty.app import LOYALTY
from services.loyalty.points_postings import PointsPoster
from services.loyalty.program_rules import DEFAULT_PROGRAM
from services.loyalty.settings import LoyaltySettings
from tests.integration.loyalty.conftest import ProgramChange
from tests.integration.loyalty.test_loyalty_expiry_and_tiers import ProgramChanged, earn, open_account, redeem
from tests.support import failure, request_id
from tools.postgres import PostgresCluster

UNICODE_TEXTS = [
    "",
    "a",
    "Oʻzbekiston",
    "Київстар",
    "Tiếng Việt có dấu",
    "📱 handset",
    "x" * 127,
    "y" * 128,
    "é" * 200,
]


async def test_the_database_encodes_the_fields_it_adds_as_protobuf_does(loyalty_engine: AsyncEngine):
    numbers = [0, 1, 127, 128, 255, 300, 16_383, 16_384, 2**31, 2**32 + 7, 2**63 - 1]
    numbers += random.Random(7).sample(range(2**62), 20)
    async with loyalty_engine.connect() as connection:
        for number in numbers:
            encoded = await connection.scalar(text("SELECT protobuf_uint_field(4, :n)"), {"n": number})
            assert bytes(encoded) == loyalty_pb2.LedgerEntry(balance_after=number).SerializeToString(), number
        for value in UNICODE_TEXTS:
            encoded = await connection.scalar(text("SELECT protobuf_text_field(1, :v)"), {"v": value})
            assert bytes(encoded) == loyalty_pb2.LedgerEntry(name=value).SerializeToString(), value
            entry = loyalty_pb2.LedgerEntry(name=value, reason=value, points=-5).SerializeToString()
            wrapped = await connection.scalar(text("SELECT protobuf_message_field(1, :m)"), {"m": entry})
            announced = events_pb2.EntryPosted(entry=loyalty_pb2.LedgerEntry.FromString(entry))
            assert bytes(wrapped) == announced.SerializeToString(), value


async def _account_events(engine: AsyncEngine, account: str) -> list[tuple[str, bytes]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT type, payload FROM outbox WHERE aggregateid = :a ORDER BY seq"), {"a": account}
        )
        return [(row.type, bytes(row.payload)) for row in rows]


async def test_an_earning_that_raises_the_tier_announces_its_entry_and_then_the_new_tier(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine, loyalty_clock: ManualClock
):
    account = await open_account(loyalty_stub)
    earned = await earn(loyalty_stub, account, 1000)
    spent = await redeem(loyalty_stub, account, 300)
    events = await _account_events(loyalty_engine, account)
    assert [kind for kind, _ in events] == [
        "crm.loyalty.v1.AccountOpened",
        "crm.loyalty.v1.EntryPosted",
        "crm.loyalty.v1.TierChanged",
        "crm.loyalty.v1.EntryPosted",
    ]
    assert events_pb2.EntryPosted.FromString(events[1][1]).entry == earned
    raised = events_pb2.TierChanged.FromString(events[2][1])
    assert (raised.account, raised.previous_tier, raised.tier, raised.qualifying_points) == (
        account,
        "bronze",
        "silver",
        1000,
    )
    assert raised.review_time.ToDatetime(tzinfo=UTC) == earned.create_time.ToDatetime(tzinfo=UTC) + timedelta(days=365)
    assert events_pb2.EntryPosted.FromString(events[3][1]).entry == spent


async def test_a_refused_redemption_leaves_its_request_id_free_for_the_same_request_later(
    loyalty_stub: LoyaltyServiceStub,
):
    account = await open_account(loyalty_stub)
    request = loyalty_service_pb2.RedeemPointsRequest(
        account=account, points=50, reason="voucher", request_id=request_id()
    )
    code, error = await failure(loyalty_stub.RedeemPoints(request, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")
    await earn(loyalty_stub, account, 80)
    spent = await loyalty_stub.RedeemPoints(request, timeout=5)
    assert (spent.points, spent.balance_after) == (-50, 30)
    assert await loyalty_stub.RedeemPoints(request, timeout=5) == spent


def _window(seconds: int) -> ProgramChange:
    def edit(program: program_pb2.Program) -> None:
        program.qualification_window.CopyFrom(Duration(seconds=seconds))

    return edit


async def test_the_qualification_window_counts_the_points_earned_within_it_as_it_moves_either_way(
    loyalty_stub: LoyaltyServiceStub, loyalty_clock: ManualClock, program_changed: ProgramChanged
):
    async def qualifying(account: str) -> int:
        status = await loyalty_stub.GetTierStatus(
            loyalty_service_pb2.GetTierStatusRequest(name=f"{account}/tierStatus"), timeout=5
        )
        return status.qualifying_points

    async with program_changed(_window(10)):
        account = await open_account(loyalty_stub)
        await earn(loyalty_stub, account, 600)
        loyalty_clock.advance(timedelta(seconds=6))
        await earn(loyalty_stub, account, 300)
        assert await qualifying(account) == 900
        loyalty_clock.advance(timedelta(seconds=5))
        # The first earning left the window: the posting's window no longer counts it.
        await earn(loyalty_stub, account, 99)
        assert await qualifying(account) == 399
    # A longer window reaches back to the first earning again, for reads and for the next posting.
    async with program_changed(_window(100 * 86400)):
        assert await qualifying(account) == 999
        await earn(loyalty_stub, account, 1)
        found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account), timeout=5)
        assert (await qualifying(account), found.tier) == (1000, "silver")


LOTS = 10_000
OTHER_ACCOUNTS = 20_000
# Tables that grow with the ledger's history; a request may only reach into them through an index.
HISTORY_TABLES = ("accounts", "ledger_entries", "point_lots", "lot_draws", "idempotency_keys", "outbox")
MAX_ROWS_PER_NODE = 20
HOLDINGS_SLOTS = 1024
# One window of lots: a thousand seeded, and the few the tests of this module post.
LOTS_PER_WINDOW = 1020
AUTO_EXPLAIN = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_nested_statements": "on",
    "client_min_messages": "log",
}


@pytest.fixture(scope="module")
async def long_history(postgres: PostgresCluster, worker_id: str) -> AsyncIterator[tuple[Database, uuid.UUID]]:
    """A loyalty database of its own holding one account with ten thousand lots earned over ten years
    (and twenty thousand other accounts and request ids), analyzed before all that was written, whose
    connections log every plan they run, nested ones too."""
    url = postgres.ensure_database(f"loyalty_plans_{worker_id}")
    LOYALTY.migrate(LoyaltySettings.from_environment(Environment({"LOYALTY_DATABASE_URL": url})))
    engine = create_async_engine(
        async_url(url), pool_size=1, max_overflow=0, connect_args={"server_settings": AUTO_EXPLAIN}
    )
    account = uuid.uuid4()
    now = datetime.now(UTC)
    window_start = now - timedelta(days=365)
    async with engine.begin() as connection:
        # Statistics from before the history, as when an account earns faster than the table is analyzed:
        # the plans must stay bounded whatever the planner believes of the account's number of lots.
        await connection.execute(text("ANALYZE"))
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO accounts (id, tier, create_time, creator, update_time) "
                "SELECT gen_random_uuid(), 'bronze', :now, 'test', :now FROM generate_series(1, :n)"
            ),
            {"now": now, "n": OTHER_ACCOUNTS},
        )
        await connection.execute(
            text(
                "INSERT INTO idempotency_keys (caller, request_id, method, fingerprint, response) "
                "SELECT 'test', 'seed-' || n, 'crm.loyalty.v1.EarnPointsRequest', '', '' FROM generate_series(1, :n) n"
            ),
            {"n": OTHER_ACCOUNTS},
        )
        # One earning of 10 points every 8.76 hours for ten years, each lot valid for twenty.
        await connection.execute(
            text(
                "INSERT INTO accounts (id, tier, create_time, creator, update_time, balance, lifetime_earned, "
                "entry_count, qualifying_points, qualifying_since) "
                "VALUES (:a, 'bronze', :start, 'test', :now, 10 * :n, 10 * :n, :n, 0, :since)"
            ),
            {"a": account, "start": now - timedelta(days=3650), "now": now, "n": LOTS, "since": window_start},
        )
        await connection.execute(
            text(
                "WITH earned AS (SELECT n, CAST(:now AS timestamptz) - (:n - n) * interval '8.76 hours' AS at "
                "FROM generate_series(1, :n) AS n), "
                "entries AS (INSERT INTO ledger_entries (account_id, entry, kind, points, balance_after, reason, "
                "actor, create_time, expire_time) SELECT :a, n, 'EARN', 10, 10 * n, 'usage', 'test', at, "
                "at + interval '20 years' FROM earned RETURNING entry, create_time, expire_time) "
                "INSERT INTO point_lots (account_id, lot, earn_time, expire_time, points, remaining, qualifying) "
                "SELECT :a, entry, create_time, expire_time, 10, 10, 10 FROM entries"
            ),
            {"a": account, "now": now - timedelta(minutes=1), "n": LOTS},
        )
        await connection.execute(
            text(
                "UPDATE accounts SET qualifying_points = (SELECT sum(qualifying) FROM point_lots "
                "WHERE account_id = :a AND earn_time > :since) WHERE id = :a"
            ),
            {"a": account, "since": window_start},
        )
    yield Database(engine), account
    await engine.dispose()
    postgres.drop_database(f"loyalty_plans_{worker_id}")


async def _logged_plans(database: Database, during: Awaitable[None]) -> list[str]:
    """The plans the (only) pooled connection logs while the awaitable `during` makes runs."""
    plans: list[str] = []

    def collect(_: asyncpg.Connection, message: asyncpg.PostgresLogMessage) -> None:
        if "plan:" in str(message):
            plans.append(str(message))

    async with database.engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
    driver.add_log_listener(collect)
    try:
        await during
    finally:
        driver.remove_log_listener(collect)
    return plans


def _assert_bounded(plans: list[str]) -> None:
    assert plans
    for plan in plans:
        for table in HISTORY_TABLES:
            assert f"Seq Scan on {table}" not in plan, plan
        rows = [float(n) for n in re.findall(r"actual rows=([\d.]+)", plan)]
        assert all(n <= MAX_ROWS_PER_NODE for n in rows), plan
        removed = [float(n) for n in re.findall(r"Rows Removed by Filter: ([\d.]+)", plan)]
        assert all(n <= MAX_ROWS_PER_NODE for n in removed), plan


async def test_postings_to_an_account_with_ten_thousand_lots_read_few_rows_and_only_through_indexes(
    long_history: tuple[Database, uuid.UUID],
):
    database, account = long_history
    poster = PointsPoster(database)
    name = f"accounts/{account}"
    now = datetime.now(UTC)

    async def post_both() -> None:
        earning = loyalty_service_pb2.EarnPointsRequest(
            account=name, points=10, reason="usage", request_id=request_id()
        )
        await poster.post(earning, account, ledger.earning(10, "usage"), now)
        spending = loyalty_service_pb2.RedeemPointsRequest(
            account=name, points=25, reason="voucher", request_id=request_id()
        )
        await poster.post(spending, account, ledger.redemption(25, "voucher"), now)

    await post_both()  # the function's statements are planned on first use
    plans = await _logged_plans(database, post_both())
    print("\n\n".join(plans))
    _assert_bounded(plans)
    assert any("Index" in plan and "point_lots" in plan for plan in plans)


async def test_tier_reads_and_reversal_draws_on_a_long_history_read_few_rows_and_only_through_indexes(
    long_history: tuple[Database, uuid.UUID],
):
    database, account = long_history

    async def read_and_draw() -> None:
        now = datetime.now(UTC)
        async with database.transaction() as session:
            await store.qualifying_points(session, account, now - timedelta(days=365), now)
            await store.move_qualifying_window(session, account, now - timedelta(days=365), now)
            await store.spendable_lots(session, account, 35, first=LOTS // 2)

    plans = await _logged_plans(database, read_and_draw())
    print("\n\n".join(plans))
    _assert_bounded(plans)


async def test_the_program_holdings_are_read_from_a_fixed_number_of_counters_not_from_the_accounts(
    long_history: tuple[Database, uuid.UUID],
):
    database, _ = long_history

    async def read_holdings() -> None:
        async with database.transaction() as session:
            outstanding, per_tier, _ = await store.holdings(session)
        assert outstanding > 9 * LOTS and per_tier["bronze"] >= OTHER_ACCOUNTS

    plans = await _logged_plans(database, read_holdings())
    print("\n\n".join(plans))
    assert plans and not any("on accounts" in plan for plan in plans)
    rows = [float(n) for plan in plans for n in re.findall(r"actual rows=([\d.]+)", plan)]
    # At most a counter per slot and tier, whatever the number of accounts.
    assert max(rows) <= HOLDINGS_SLOTS * len(DEFAULT_PROGRAM.tiers), plans


async def test_an_account_idle_for_years_reads_no_more_than_one_window_of_lots_for_its_tier(
    long_history: tuple[Database, uuid.UUID],
):
    database, account = long_history
    now = datetime.now(UTC)
    async with database.transaction() as session:
        # As if its running total had last moved nine years ago (or never, before the totals began).
        await store.move_qualifying_window(session, account, now - timedelta(days=9 * 365), now)
    poster = PointsPoster(database)

    async def read_then_earn() -> None:
        async with database.transaction() as session:
            await store.qualifying_points(session, account, now - timedelta(days=365), now)
        earning = loyalty_service_pb2.EarnPointsRequest(
            account=f"accounts/{account}", points=10, reason="usage", request_id=request_id()
        )
        await poster.post(earning, account, ledger.earning(10, "usage"), now)

    plans = await _logged_plans(database, read_then_earn())
    print("\n\n".join(plans))
    # One window of a lot every 8.76 hours: a thousand lots, not the nine thousand before them.
    for plan in plans:
        for table in HISTORY_TABLES:
            assert f"Seq Scan on {table}" not in plan, plan
        rows = [float(n) for n in re.findall(r"actual rows=([\d.]+)", plan)]
        assert all(n <= LOTS_PER_WINDOW for n in rows), plan
