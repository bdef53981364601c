"""Point lots, expiry, tiers and the program's figures, through real gRPC and a real PostgreSQL.

Durations of the program (validity, qualification window, review period) are set to seconds here,
and the service's clock is moved past them, so that lapses and reviews happen within a test."""

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import ManualClock
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, program_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.integration.loyalty.conftest import ProgramChange
from tests.integration.loyalty.ledger_checks import holdings_state, ledger_state
from tests.support import failure, request_id

ProgramChanged = Callable[[ProgramChange], AbstractAsyncContextManager[program_pb2.Program]]


async def open_account(stub: LoyaltyServiceStub) -> str:
    account = await stub.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=f"customers/{uuid.uuid4()}", request_id=request_id()),
        timeout=5,
    )
    return account.name


async def earn(stub: LoyaltyServiceStub, account: str, points: int) -> loyalty_pb2.LedgerEntry:
    return await stub.EarnPoints(
        loyalty_service_pb2.EarnPointsRequest(account=account, points=points, reason="usage", request_id=request_id()),
        timeout=5,
    )


async def redeem(stub: LoyaltyServiceStub, account: str, points: int) -> loyalty_pb2.LedgerEntry:
    return await stub.RedeemPoints(
        loyalty_service_pb2.RedeemPointsRequest(
            account=account, points=points, reason="voucher", request_id=request_id()
        ),
        timeout=5,
    )


async def run_schedule(stub: LoyaltyServiceStub) -> loyalty_service_pb2.RunScheduledWorkResponse:
    return await stub.RunScheduledWork(loyalty_service_pb2.RunScheduledWorkRequest(), timeout=60)


async def lots(engine: AsyncEngine, account: str) -> list[tuple[int, int]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT lot, remaining FROM point_lots WHERE account_id = :a ORDER BY lot"),
            {"a": account.removeprefix("accounts/")},
        )
        return [(row.lot, row.remaining) for row in rows]


def validity(seconds: int) -> ProgramChange:
    def edit(program: program_pb2.Program) -> None:
        program.points_validity.CopyFrom(Duration(seconds=seconds))

    return edit


def tier_timing(window_seconds: int, review_seconds: int) -> ProgramChange:
    def edit(program: program_pb2.Program) -> None:
        program.qualification_window.CopyFrom(Duration(seconds=window_seconds))
        program.tier_review_period.CopyFrom(Duration(seconds=review_seconds))

    return edit


async def test_spending_draws_on_the_oldest_points_first(loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine):
    account = await open_account(loyalty_stub)
    first = await earn(loyalty_stub, account, 100)
    second = await earn(loyalty_stub, account, 50)
    await redeem(loyalty_stub, account, 120)
    number = int(first.name.rsplit("/", 1)[1]), int(second.name.rsplit("/", 1)[1])
    assert await lots(loyalty_engine, account) == [(number[0], 0), (number[1], 30)]


async def test_a_reversed_credit_takes_back_its_own_points_first(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine
):
    account = await open_account(loyalty_stub)
    older = await earn(loyalty_stub, account, 100)
    newer = await earn(loyalty_stub, account, 40)
    await loyalty_stub.ReverseEntry(
        loyalty_service_pb2.ReverseEntryRequest(name=newer.name, reason="payment refunded", request_id=request_id()),
        timeout=5,
    )
    older_lot, newer_lot = (int(e.name.rsplit("/", 1)[1]) for e in (older, newer))
    assert await lots(loyalty_engine, account) == [(older_lot, 100), (newer_lot, 0)]


async def test_unspent_points_lapse_after_their_validity_and_expire_once(
    loyalty_stub: LoyaltyServiceStub,
    loyalty_engine: AsyncEngine,
    loyalty_clock: ManualClock,
    program_changed: ProgramChanged,
):
    async with program_changed(validity(1)):
        account = await open_account(loyalty_stub)
        credit = await earn(loyalty_stub, account, 100)
        assert credit.expire_time.ToDatetime(tzinfo=UTC) - credit.create_time.ToDatetime(tzinfo=UTC) == timedelta(
            seconds=1
        )
        await redeem(loyalty_stub, account, 30)
        loyalty_clock.advance(timedelta(seconds=1))
        await run_schedule(loyalty_stub)
        await run_schedule(loyalty_stub)
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account), timeout=5)
    assert (found.available_points, found.lifetime_expired_points, found.entry_count) == (0, 70, 3)
    newest = await loyalty_stub.ListEntries(
        loyalty_service_pb2.ListEntriesRequest(parent=account, page_size=1), timeout=5
    )
    assert (newest.entries[0].kind, newest.entries[0].points) == (loyalty_pb2.ENTRY_KIND_EXPIRE, -70)
    state = await ledger_state(loyalty_engine, account)
    assert state["balance"] == state["points"] == state["in_lots"] == 0


async def test_concurrent_expiry_runs_expire_every_lapsed_lot_exactly_once(
    loyalty_stub: LoyaltyServiceStub,
    loyalty_engine: AsyncEngine,
    loyalty_clock: ManualClock,
    program_changed: ProgramChanged,
):
    async with program_changed(validity(1)):
        accounts = [await open_account(loyalty_stub) for _ in range(15)]
        for index, account in enumerate(accounts):
            await earn(loyalty_stub, account, 10 + index)
            await earn(loyalty_stub, account, 5)
        loyalty_clock.advance(timedelta(seconds=1))
        await asyncio.gather(*(run_schedule(loyalty_stub) for _ in range(4)))
    async with loyalty_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT account_id, count(*) AS expiries, sum(points) AS points FROM ledger_entries "
                "WHERE kind = 'EXPIRE' AND account_id = ANY(:ids) GROUP BY account_id"
            ),
            {"ids": [uuid.UUID(a.removeprefix("accounts/")) for a in accounts]},
        )
        expiries = {f"accounts/{row.account_id}": (row.expiries, -row.points) for row in rows}
    assert expiries == {account: (1, 15 + index) for index, account in enumerate(accounts)}


async def test_the_balance_shows_points_lapsing_soon_by_day(
    loyalty_stub: LoyaltyServiceStub, program_changed: ProgramChanged
):
    async with program_changed(validity(10 * 86400)):
        account = await open_account(loyalty_stub)
        lapsing = await earn(loyalty_stub, account, 80)
    await earn(loyalty_stub, account, 20)
    soon = await loyalty_stub.GetBalance(
        loyalty_service_pb2.GetBalanceRequest(name=f"{account}/balance", expiring_within=Duration(seconds=30 * 86400)),
        timeout=5,
    )
    assert (soon.available_points, soon.reserved_points) == (100, 0)
    assert [e.points for e in soon.expiring] == [80]
    lapse_time = lapsing.expire_time.ToDatetime(tzinfo=UTC)
    assert soon.expiring[0].expire_time.ToDatetime(tzinfo=UTC) == lapse_time.replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    default_horizon = await loyalty_stub.GetBalance(
        loyalty_service_pb2.GetBalanceRequest(name=f"{account}/balance"), timeout=5
    )
    assert [e.points for e in default_horizon.expiring] == [80]


async def test_earning_past_a_threshold_raises_the_tier_at_once(
    loyalty_stub: LoyaltyServiceStub, loyalty_clock: ManualClock
):
    account = await open_account(loyalty_stub)
    await earn(loyalty_stub, account, 999)
    status = await loyalty_stub.GetTierStatus(
        loyalty_service_pb2.GetTierStatusRequest(name=f"{account}/tierStatus"), timeout=5
    )
    assert (status.tier, status.qualifying_points, status.next_tier, status.points_to_next_tier) == (
        "bronze",
        999,
        "silver",
        1,
    )
    await earn(loyalty_stub, account, 1)
    status = await loyalty_stub.GetTierStatus(
        loyalty_service_pb2.GetTierStatusRequest(name=f"{account}/tierStatus"), timeout=5
    )
    assert (status.tier, status.next_tier, status.points_to_next_tier) == ("silver", "gold", 2000)
    assert status.review_time.ToDatetime(tzinfo=UTC) == loyalty_clock.now() + timedelta(days=365)


async def test_tiers_count_points_earned_not_the_balance(loyalty_stub: LoyaltyServiceStub):
    account = await open_account(loyalty_stub)
    await earn(loyalty_stub, account, 3000)
    await redeem(loyalty_stub, account, 3000)
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account), timeout=5)
    assert (found.tier, found.available_points) == ("gold", 0)


async def test_a_tier_is_lowered_only_at_its_review(
    loyalty_stub: LoyaltyServiceStub, loyalty_clock: ManualClock, program_changed: ProgramChanged
):
    async with program_changed(tier_timing(window_seconds=1, review_seconds=5)):
        account = await open_account(loyalty_stub)
        await earn(loyalty_stub, account, 1000)
        loyalty_clock.advance(timedelta(seconds=1))
        await run_schedule(loyalty_stub)
        early = await loyalty_stub.GetTierStatus(
            loyalty_service_pb2.GetTierStatusRequest(name=f"{account}/tierStatus"), timeout=5
        )
        assert (early.tier, early.qualifying_points, early.qualified_tier) == ("silver", 0, "bronze")
        loyalty_clock.set(early.review_time.ToDatetime(tzinfo=UTC))
        runs = await asyncio.gather(run_schedule(loyalty_stub), run_schedule(loyalty_stub))
        assert sum(run.tiers_lowered for run in runs) >= 1
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account), timeout=5)
    assert found.tier == "bronze"
    assert not found.HasField("tier_review_time")


async def test_a_stale_or_broken_program_is_refused_and_changes_nothing(
    loyalty_stub: LoyaltyServiceStub, program_changed: ProgramChanged
):
    read_earlier = await loyalty_stub.GetProgram(loyalty_service_pb2.GetProgramRequest(name="program"), timeout=5)
    # The same program stored again: a new version, so the etag read earlier is stale.
    async with program_changed(lambda program: None) as current:
        stale = program_pb2.Program()
        stale.CopyFrom(current)
        stale.etag = read_earlier.etag
        code, _ = await failure(
            loyalty_stub.UpdateProgram(
                loyalty_service_pb2.UpdateProgramRequest(program=stale, request_id=request_id()), timeout=5
            )
        )
        assert code == grpc.StatusCode.ABORTED
        broken = program_pb2.Program()
        broken.CopyFrom(current)
        broken.tiers[1].qualifying_points = 0
        broken.earning_rules[0].action.points = 0
        code, error = await failure(
            loyalty_stub.UpdateProgram(
                loyalty_service_pb2.UpdateProgramRequest(program=broken, request_id=request_id()), timeout=5
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        fields = {v.field for v in error.violations}
        assert {"program.tiers[1].qualifying_points", "program.earning_rules[0].action.points"} <= fields
        after = await loyalty_stub.GetProgram(loyalty_service_pb2.GetProgramRequest(name="program"), timeout=5)
        assert after == current


async def test_the_program_figures_show_liability_flows_tiers_and_redemption_rate(
    loyalty_stub: LoyaltyServiceStub,
    loyalty_clock: ManualClock,
    program_changed: ProgramChanged,
    loyalty_engine: AsyncEngine,
):
    # What earlier tests left to lapse within a second lapses first, so the figures count this test's alone.
    loyalty_clock.advance(timedelta(seconds=1))
    await run_schedule(loyalty_stub)
    before = await loyalty_stub.GetProgramKpis(loyalty_service_pb2.GetProgramKpisRequest(), timeout=5)
    start = Timestamp()
    start.FromDatetime(loyalty_clock.advance(timedelta(seconds=1)))
    spender, lapser = await open_account(loyalty_stub), await open_account(loyalty_stub)
    await earn(loyalty_stub, spender, 1000)
    await loyalty_stub.GrantGoodwill(
        loyalty_service_pb2.GrantGoodwillRequest(account=spender, points=100, reason="outage", request_id=request_id()),
        timeout=5,
    )
    await redeem(loyalty_stub, spender, 300)
    async with program_changed(validity(1)):
        await earn(loyalty_stub, lapser, 40)
        loyalty_clock.advance(timedelta(seconds=1))
        await run_schedule(loyalty_stub)
    # The period ends before `now` (exclusive): read the figures a second after the expiry.
    loyalty_clock.advance(timedelta(seconds=1))
    figures = await loyalty_stub.GetProgramKpis(loyalty_service_pb2.GetProgramKpisRequest(start_time=start), timeout=5)
    assert (figures.earned_points, figures.redeemed_points, figures.expired_points) == (1140, 300, 40)
    assert figures.redemption_rate == 300 / 1140
    assert figures.redeeming_accounts == 1
    assert figures.outstanding_points - before.outstanding_points == 800
    assert figures.liability.currency_code == "USD"
    assert figures.liability.units * 100 + figures.liability.nanos // 10_000_000 == figures.outstanding_points
    tiers_before = {t.tier: t.accounts for t in before.members_per_tier}
    tiers_after = {t.tier: t.accounts for t in figures.members_per_tier}
    assert list(tiers_after) == ["bronze", "silver", "gold", "platinum"]
    assert tiers_after["silver"] - tiers_before["silver"] == 1
    assert tiers_after["bronze"] - tiers_before["bronze"] == 1
    counted, scanned = await holdings_state(loyalty_engine)
    assert counted == scanned
