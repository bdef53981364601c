"""The ledger under concurrent and repeated calls: never overdrawn, every request applied once."""

import asyncio
from collections import Counter

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.status import from_rpc_error
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.integration.loyalty.ledger_checks import ledger_sum
from tests.support import failure, request_id


async def _outcome(call: object) -> str:
    """ "OK", or the failed call's code and reason, e.g. "FAILED_PRECONDITION:INSUFFICIENT_POINTS"."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return f"{error.code().name}:{from_rpc_error(error).reason}"
    return "OK"


async def test_concurrent_redemptions_spend_exactly_the_balance_and_never_more(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    affordable = 37
    await loyalty_stub.EarnPoints(
        loyalty_service_pb2.EarnPointsRequest(
            account=account.name, points=affordable * 10, reason="tenure", request_id=request_id()
        ),
        timeout=5,
    )
    redemptions = [
        loyalty_stub.RedeemPoints(
            loyalty_service_pb2.RedeemPointsRequest(
                account=account.name, points=10, reason="voucher", request_id=request_id()
            ),
            timeout=30,
        )
        for _ in range(200)
    ]
    outcomes = Counter(await asyncio.gather(*(_outcome(call) for call in redemptions)))
    assert outcomes == {"OK": affordable, "FAILED_PRECONDITION:INSUFFICIENT_POINTS": 200 - affordable}
    assert await ledger_sum(loyalty_engine, account.name) == (0, 0)
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account.name), timeout=5)
    assert (found.available_points, found.lifetime_redeemed_points, found.entry_count) == (0, 370, 1 + affordable)


async def test_one_request_id_sent_ten_times_writes_one_entry_and_gets_one_answer(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    request = loyalty_service_pb2.EarnPointsRequest(
        account=account.name, points=25, reason="top-up bonus", request_id=request_id()
    )
    concurrent = await asyncio.gather(*(loyalty_stub.EarnPoints(request, timeout=10) for _ in range(6)))
    sequential = [await loyalty_stub.EarnPoints(request, timeout=5) for _ in range(4)]
    answers = {answer.SerializeToString(deterministic=True) for answer in [*concurrent, *sequential]}
    assert len(answers) == 1
    assert concurrent[0].name == f"{account.name}/entries/1"
    assert await ledger_sum(loyalty_engine, account.name) == (25, 25)
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account.name), timeout=5)
    assert found.entry_count == 1


async def test_one_request_id_with_different_content_is_request_id_reused(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    rid = request_id()
    first = loyalty_service_pb2.EarnPointsRequest(account=account.name, points=25, reason="bonus", request_id=rid)
    await loyalty_stub.EarnPoints(first, timeout=5)
    changed = loyalty_service_pb2.EarnPointsRequest(account=account.name, points=26, reason="bonus", request_id=rid)
    code, error = await failure(loyalty_stub.EarnPoints(changed, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    other_method = loyalty_service_pb2.RedeemPointsRequest(
        account=account.name, points=25, reason="bonus", request_id=rid
    )
    code, error = await failure(loyalty_stub.RedeemPoints(other_method, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED")
    assert await ledger_sum(loyalty_engine, account.name) == (25, 25)


async def test_concurrent_reversals_of_one_entry_write_one_reversal(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    earned = await loyalty_stub.EarnPoints(
        loyalty_service_pb2.EarnPointsRequest(account=account.name, points=80, reason="spend", request_id=request_id()),
        timeout=5,
    )
    reversals = [
        loyalty_stub.ReverseEntry(
            loyalty_service_pb2.ReverseEntryRequest(name=earned.name, request_id=request_id()), timeout=10
        )
        for _ in range(20)
    ]
    outcomes = Counter(await asyncio.gather(*(_outcome(call) for call in reversals)))
    assert outcomes == {"OK": 1, "FAILED_PRECONDITION:ALREADY_REVERSED": 19}
    assert await ledger_sum(loyalty_engine, account.name) == (0, 0)
