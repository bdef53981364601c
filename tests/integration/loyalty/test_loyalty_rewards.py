"""The rewards catalog and spending points on it, through real gRPC and a real PostgreSQL:
self-service redemption in one step, partner-shop reservations captured, released or lapsed, and
races between them that settle each reservation exactly once."""

import asyncio
import uuid
from datetime import timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import ManualClock
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, rewards_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.integration.loyalty.ledger_checks import entry_count, ledger_state
from tests.support import failure, request_id

PARTNER = "retailer-artel-chilonzor"


async def new_reward(
    stub: LoyaltyServiceStub,
    kind: int,
    price: int,
    *,
    stock: int = 0,
    eligible_tiers: tuple[str, ...] = (),
) -> rewards_pb2.Reward:
    reward_id = f"r-{uuid.uuid4().hex[:12]}"
    reward = await stub.CreateReward(
        loyalty_service_pb2.CreateRewardRequest(
            reward=rewards_pb2.Reward(
                display_name=f"Reward {reward_id}", kind=kind, points_price=price, eligible_tiers=eligible_tiers
            ),
            reward_id=reward_id,
            request_id=request_id(),
        ),
        timeout=5,
    )
    if stock:
        reward = await stub.RestockReward(
            loyalty_service_pb2.RestockRewardRequest(
                reward=reward.name, partner=PARTNER, quantity=stock, request_id=request_id()
            ),
            timeout=5,
        )
    return reward


async def funded_account(stub: LoyaltyServiceStub, points: int) -> str:
    account = await stub.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=f"customers/{uuid.uuid4()}", request_id=request_id()),
        timeout=5,
    )
    if points:
        await stub.EarnPoints(
            loyalty_service_pb2.EarnPointsRequest(
                account=account.name, points=points, reason="bill payments", request_id=request_id()
            ),
            timeout=5,
        )
    return account.name


def reserve(account: str, reward: str, *, hold_seconds: int = 1800) -> loyalty_service_pb2.ReserveRewardRequest:
    return loyalty_service_pb2.ReserveRewardRequest(
        account=account,
        reward=reward,
        partner=PARTNER,
        hold_duration=Duration(seconds=hold_seconds),
        request_id=request_id(),
    )


def capture(reservation: str) -> loyalty_service_pb2.CaptureReservationRequest:
    return loyalty_service_pb2.CaptureReservationRequest(name=reservation, request_id=request_id())


def release(reservation: str) -> loyalty_service_pb2.ReleaseReservationRequest:
    return loyalty_service_pb2.ReleaseReservationRequest(
        name=reservation, reason="customer changed their mind", request_id=request_id()
    )


async def account_of(stub: LoyaltyServiceStub, name: str) -> loyalty_pb2.Account:
    return await stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=name), timeout=5)


async def stock_of(stub: LoyaltyServiceStub, reward: str) -> tuple[int, int]:
    found = await stub.GetReward(loyalty_service_pb2.GetRewardRequest(name=reward), timeout=5)
    shelf = [s for s in found.stock if s.partner == PARTNER]
    return (shelf[0].available, shelf[0].reserved) if shelf else (0, 0)


async def test_a_self_service_reward_is_redeemed_in_one_step_for_its_price(loyalty_stub: LoyaltyServiceStub):
    discount = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_BILL_DISCOUNT, 300)
    account = await funded_account(loyalty_stub, 500)
    entry = await loyalty_stub.RedeemReward(
        loyalty_service_pb2.RedeemRewardRequest(account=account, reward=discount.name, request_id=request_id()),
        timeout=5,
    )
    assert (entry.kind, entry.points, entry.balance_after) == (loyalty_pb2.ENTRY_KIND_REDEEM, -300, 200)
    assert entry.source_reference == discount.name
    assert (await account_of(loyalty_stub, account)).lifetime_redeemed_points == 300


async def test_a_handset_is_not_redeemed_in_one_step(loyalty_stub: LoyaltyServiceStub):
    handset = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_HANDSET, 100, stock=1)
    account = await funded_account(loyalty_stub, 500)
    code, error = await failure(
        loyalty_stub.RedeemReward(
            loyalty_service_pb2.RedeemRewardRequest(account=account, reward=handset.name, request_id=request_id()),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REDEEMED_AT_PARTNER")
    assert (await account_of(loyalty_stub, account)).available_points == 500


async def test_a_reservation_holds_points_and_a_piece_and_the_capture_spends_them(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine
):
    handset = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_HANDSET, 400, stock=2)
    account = await funded_account(loyalty_stub, 1000)
    held = await loyalty_stub.ReserveReward(reserve(account, handset.name), timeout=5)
    assert held.state == rewards_pb2.RESERVATION_STATE_HELD
    after_hold = await account_of(loyalty_stub, account)
    assert (after_hold.available_points, after_hold.reserved_points) == (600, 400)
    assert await stock_of(loyalty_stub, handset.name) == (1, 1)

    captured = await loyalty_stub.CaptureReservation(capture(held.name), timeout=5)
    assert captured.state == rewards_pb2.RESERVATION_STATE_CAPTURED
    assert captured.settle_entry
    after_capture = await account_of(loyalty_stub, account)
    assert (after_capture.available_points, after_capture.reserved_points) == (600, 0)
    assert after_capture.lifetime_redeemed_points == 400
    assert await stock_of(loyalty_stub, handset.name) == (1, 0)
    state = await ledger_state(loyalty_engine, account)
    assert state["balance"] == state["points"] == state["in_lots"] == 600
    assert state["reserved"] == state["reserved_changes"] == 0


async def test_a_release_gives_the_points_and_the_piece_back(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine
):
    handset = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_HANDSET, 400, stock=1)
    account = await funded_account(loyalty_stub, 400)
    held = await loyalty_stub.ReserveReward(reserve(account, handset.name), timeout=5)
    released = await loyalty_stub.ReleaseReservation(release(held.name), timeout=5)
    assert released.state == rewards_pb2.RESERVATION_STATE_RELEASED
    after = await account_of(loyalty_stub, account)
    assert (after.available_points, after.reserved_points, after.lifetime_redeemed_points) == (400, 0, 0)
    assert await stock_of(loyalty_stub, handset.name) == (1, 0)
    state = await ledger_state(loyalty_engine, account)
    assert state["balance"] == state["points"] == state["in_lots"] == 400


async def test_capture_and_release_racing_on_one_reservation_settle_it_exactly_once(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine
):
    handset = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_PRIZE, 100, stock=20)
    account = await funded_account(loyalty_stub, 2000)
    held = [await loyalty_stub.ReserveReward(reserve(account, handset.name), timeout=5) for _ in range(20)]

    async def outcome(call: object) -> str:
        try:
            await call  # type: ignore[misc]
            return "won"
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            return "lost"

    races = [
        asyncio.gather(
            outcome(loyalty_stub.CaptureReservation(capture(r.name), timeout=10)),
            outcome(loyalty_stub.ReleaseReservation(release(r.name), timeout=10)),
            outcome(loyalty_stub.CaptureReservation(capture(r.name), timeout=10)),
        )
        for r in held
    ]
    results = await asyncio.gather(*races)
    assert all(result.count("won") == 1 for result in results)

    states = [
        (await loyalty_stub.GetReservation(loyalty_service_pb2.GetReservationRequest(name=r.name), timeout=5)).state
        for r in held
    ]
    captured = states.count(rewards_pb2.RESERVATION_STATE_CAPTURED)
    released = states.count(rewards_pb2.RESERVATION_STATE_RELEASED)
    assert captured + released == 20
    after = await account_of(loyalty_stub, account)
    assert (after.available_points, after.reserved_points) == (2000 - 100 * captured, 0)
    assert await stock_of(loyalty_stub, handset.name) == (released, 0)
    state = await ledger_state(loyalty_engine, account)
    assert state["balance"] == state["points"] == state["in_lots"] == after.available_points
    assert state["reserved"] == state["reserved_changes"] == 0
    async with loyalty_engine.connect() as connection:
        settled = (
            await connection.execute(
                text("SELECT count(*) FROM ledger_entries WHERE account_id = :a AND kind IN ('CAPTURE', 'RELEASE')"),
                {"a": account.removeprefix("accounts/")},
            )
        ).scalar_one()
    assert settled == 20


async def test_an_uncaptured_reservation_lapses_and_its_points_come_back_once(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine, loyalty_clock: ManualClock
):
    handset = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_HANDSET, 250, stock=1)
    account = await funded_account(loyalty_stub, 250)
    held = await loyalty_stub.ReserveReward(reserve(account, handset.name, hold_seconds=1), timeout=5)
    loyalty_clock.advance(timedelta(seconds=1))

    code, error = await failure(loyalty_stub.CaptureReservation(capture(held.name), timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_EXPIRED")

    runs = await asyncio.gather(
        *(loyalty_stub.RunScheduledWork(loyalty_service_pb2.RunScheduledWorkRequest(), timeout=30) for _ in range(3))
    )
    assert sum(run.expired_reservations for run in runs) >= 1
    lapsed = await loyalty_stub.GetReservation(loyalty_service_pb2.GetReservationRequest(name=held.name), timeout=5)
    assert lapsed.state == rewards_pb2.RESERVATION_STATE_EXPIRED
    after = await account_of(loyalty_stub, account)
    assert (after.available_points, after.reserved_points, after.entry_count) == (250, 0, 3)
    assert await stock_of(loyalty_stub, handset.name) == (1, 0)

    code, error = await failure(loyalty_stub.ReleaseReservation(release(held.name), timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_SETTLED")
    assert (await account_of(loyalty_stub, account)).entry_count == 3


async def test_a_release_racing_the_lapse_job_gives_the_points_back_once(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine, loyalty_clock: ManualClock
):
    prize = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_PRIZE, 50, stock=10)
    account = await funded_account(loyalty_stub, 500)
    held = [
        await loyalty_stub.ReserveReward(reserve(account, prize.name, hold_seconds=1), timeout=5) for _ in range(10)
    ]
    loyalty_clock.advance(timedelta(seconds=1))

    async def release_or_lose(name: str) -> None:
        try:
            await loyalty_stub.ReleaseReservation(release(name), timeout=10)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION

    await asyncio.gather(
        *(release_or_lose(r.name) for r in held),
        loyalty_stub.RunScheduledWork(loyalty_service_pb2.RunScheduledWorkRequest(), timeout=30),
        loyalty_stub.RunScheduledWork(loyalty_service_pb2.RunScheduledWorkRequest(), timeout=30),
    )
    after = await account_of(loyalty_stub, account)
    # One earn, ten holds and exactly one settling entry per hold.
    assert (after.available_points, after.reserved_points, after.entry_count) == (500, 0, 21)
    assert await stock_of(loyalty_stub, prize.name) == (10, 0)


async def test_out_of_stock_is_failed_precondition_and_holds_nothing(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine
):
    handset = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_HANDSET, 100, stock=1)
    first, second = await funded_account(loyalty_stub, 100), await funded_account(loyalty_stub, 100)
    await loyalty_stub.ReserveReward(reserve(first, handset.name), timeout=5)
    code, error = await failure(loyalty_stub.ReserveReward(reserve(second, handset.name), timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "OUT_OF_STOCK")
    after = await account_of(loyalty_stub, second)
    assert (after.available_points, after.reserved_points, after.entry_count) == (100, 0, 1)


async def test_a_reward_for_higher_tiers_is_refused_and_not_listed_for_a_bronze_member(
    loyalty_stub: LoyaltyServiceStub,
):
    gold_only = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_VOUCHER, 10, eligible_tiers=("gold", "platinum"))
    account = await funded_account(loyalty_stub, 100)
    code, error = await failure(
        loyalty_stub.RedeemReward(
            loyalty_service_pb2.RedeemRewardRequest(account=account, reward=gold_only.name, request_id=request_id()),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_ELIGIBLE")
    listed: list[str] = []
    token = ""
    for _ in range(100):
        page = await loyalty_stub.ListRewards(
            loyalty_service_pb2.ListRewardsRequest(page_size=50, page_token=token, eligible_account=account), timeout=5
        )
        listed += [r.name for r in page.rewards]
        token = page.next_page_token
        if not token:
            break
    everything = await loyalty_stub.ListRewards(loyalty_service_pb2.ListRewardsRequest(page_size=500), timeout=5)
    assert gold_only.name in [r.name for r in everything.rewards]
    assert gold_only.name not in listed
    assert (await account_of(loyalty_stub, account)).available_points == 100


async def test_a_returned_prize_reverses_its_capture(loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine):
    handset = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_HANDSET, 300, stock=1)
    account = await funded_account(loyalty_stub, 300)
    held = await loyalty_stub.ReserveReward(reserve(account, handset.name), timeout=5)
    captured = await loyalty_stub.CaptureReservation(capture(held.name), timeout=5)
    reversal = await loyalty_stub.ReverseEntry(
        loyalty_service_pb2.ReverseEntryRequest(
            name=captured.settle_entry, reason="handset returned", request_id=request_id()
        ),
        timeout=5,
    )
    assert (reversal.kind, reversal.points, reversal.balance_after) == (loyalty_pb2.ENTRY_KIND_REVERSE, 300, 300)
    after = await account_of(loyalty_stub, account)
    assert (after.available_points, after.lifetime_redeemed_points) == (300, 0)
    state = await ledger_state(loyalty_engine, account)
    assert state["balance"] == state["points"] == state["in_lots"] == 300


async def test_bad_reward_requests_are_invalid_argument_and_write_nothing(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine
):
    account = await funded_account(loyalty_stub, 100)
    before = await entry_count(loyalty_engine)
    voucher = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_VOUCHER, 10)
    cases = [
        (
            loyalty_stub.CreateReward(
                loyalty_service_pb2.CreateRewardRequest(
                    reward=rewards_pb2.Reward(
                        display_name="Free", kind=rewards_pb2.REWARD_KIND_VOUCHER, points_price=0
                    ),
                    reward_id="free-voucher",
                    request_id=request_id(),
                ),
                timeout=5,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "reward.points_price",
        ),
        (
            loyalty_stub.ReserveReward(
                loyalty_service_pb2.ReserveRewardRequest(
                    account=account,
                    reward="rewards/whatever",
                    partner=PARTNER,
                    hold_duration=Duration(seconds=10 * 86400),
                    request_id=request_id(),
                ),
                timeout=5,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "hold_duration",
        ),
        (
            loyalty_stub.RedeemReward(
                loyalty_service_pb2.RedeemRewardRequest(account=account, reward="Rewards/X", request_id=request_id()),
                timeout=5,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "reward",
        ),
    ]
    for call, code, field in cases:
        got_code, error = await failure(call)
        assert got_code == code
        assert field in [v.field for v in error.violations]
    code, error = await failure(
        loyalty_stub.RedeemReward(
            loyalty_service_pb2.RedeemRewardRequest(
                account=account, reward="rewards/no-such-reward", request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, error = await failure(
        loyalty_stub.RestockReward(
            loyalty_service_pb2.RestockRewardRequest(
                reward=voucher.name, partner=PARTNER, quantity=5, request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_STOCKED")
    code, _ = await failure(
        loyalty_stub.RedeemReward(
            loyalty_service_pb2.RedeemRewardRequest(
                account=f"accounts/{uuid.uuid4()}", reward=voucher.name, request_id=request_id()
            ),
            timeout=5,
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert await entry_count(loyalty_engine) == before
    assert (await account_of(loyalty_stub, account)).available_points == 100


async def test_a_reward_id_is_taken_once(loyalty_stub: LoyaltyServiceStub):
    reward = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_DATA_BUNDLE, 75)
    code, error = await failure(
        loyalty_stub.CreateReward(
            loyalty_service_pb2.CreateRewardRequest(
                reward=rewards_pb2.Reward(display_name="Other", kind=rewards_pb2.REWARD_KIND_VOUCHER, points_price=5),
                reward_id=reward.name.removeprefix("rewards/"),
                request_id=request_id(),
            ),
            timeout=5,
        )
    )
    assert (code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REWARD_EXISTS")
    found = await loyalty_stub.GetReward(loyalty_service_pb2.GetRewardRequest(name=reward.name), timeout=5)
    assert (found.kind, found.points_price) == (rewards_pb2.REWARD_KIND_DATA_BUNDLE, 75)


def retailer(tenant: str) -> tuple[tuple[str, str], ...]:
    """What the gateway tells a backend about a retail partner's counter."""
    return (
        ("x-crm-caller-subject", f"{tenant}/counter-1"),
        ("x-crm-caller-kind", "retailer"),
        ("x-crm-caller-tenant", tenant),
    )


async def test_a_retail_partner_reserves_and_settles_only_for_its_own_shops(loyalty_stub: LoyaltyServiceStub):
    handset = await new_reward(loyalty_stub, rewards_pb2.REWARD_KIND_HANDSET, 100, stock=2)
    account = await funded_account(loyalty_stub, 300)
    held = await loyalty_stub.ReserveReward(reserve(account, handset.name), metadata=retailer(PARTNER), timeout=5)

    other = retailer("retailer-someone-else")
    code, error = await failure(loyalty_stub.CaptureReservation(capture(held.name), metadata=other, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OTHER_PARTNER")
    code, error = await failure(loyalty_stub.ReserveReward(reserve(account, handset.name), metadata=other, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OTHER_PARTNER")
    after = await account_of(loyalty_stub, account)
    assert (after.available_points, after.reserved_points, after.entry_count) == (200, 100, 2)

    captured = await loyalty_stub.CaptureReservation(capture(held.name), metadata=retailer(PARTNER), timeout=5)
    assert captured.state == rewards_pb2.RESERVATION_STATE_CAPTURED
