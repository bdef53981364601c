"""The loyalty service's ledger through real gRPC and a real PostgreSQL: balances, entries, pages."""

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.status import status_of
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.integration.loyalty.ledger_checks import entry_count, ledger_sum
from tests.support import failure, request_id


def earn(account: str, points: int, reason: str = "monthly spend") -> loyalty_service_pb2.EarnPointsRequest:
    return loyalty_service_pb2.EarnPointsRequest(
        account=account, points=points, reason=reason, source_reference="invoices/2026-11", request_id=request_id()
    )


def redeem(account: str, points: int) -> loyalty_service_pb2.RedeemPointsRequest:
    return loyalty_service_pb2.RedeemPointsRequest(
        account=account, points=points, reason="handset voucher", request_id=request_id()
    )


async def test_an_opened_account_is_empty_and_belongs_to_the_customer(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account.name), timeout=5)
    assert found.name == account.name
    assert found.customer == "customers/" + account.name.removeprefix("accounts/")
    assert (found.available_points, found.lifetime_earned_points, found.entry_count) == (0, 0, 0)


async def test_opening_an_open_account_returns_it_unchanged(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    await loyalty_stub.EarnPoints(earn(account.name, 70), timeout=5)
    again = await loyalty_stub.OpenAccount(
        loyalty_service_pb2.OpenAccountRequest(customer=account.customer, request_id=request_id()), timeout=5
    )
    assert again.name == account.name
    assert again.available_points == 70


async def test_earning_and_redeeming_move_the_balance_and_the_lifetime_totals(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    earned = await loyalty_stub.EarnPoints(earn(account.name, 120), timeout=5)
    redeemed = await loyalty_stub.RedeemPoints(redeem(account.name, 45), timeout=5)
    assert (earned.kind, earned.points, earned.balance_after) == (loyalty_pb2.ENTRY_KIND_EARN, 120, 120)
    assert (redeemed.kind, redeemed.points, redeemed.balance_after) == (loyalty_pb2.ENTRY_KIND_REDEEM, -45, 75)
    assert earned.source_reference == "invoices/2026-11"
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account.name), timeout=5)
    assert (found.available_points, found.lifetime_earned_points, found.lifetime_redeemed_points) == (75, 120, 45)


async def test_redeeming_more_than_the_balance_is_insufficient_points_and_writes_nothing(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    await loyalty_stub.EarnPoints(earn(account.name, 30), timeout=5)
    before = await entry_count(loyalty_engine)
    code, error = await failure(loyalty_stub.RedeemPoints(redeem(account.name, 31), timeout=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "INSUFFICIENT_POINTS"
    assert error.metadata == {"available_points": "30", "required_points": "31"}
    assert await entry_count(loyalty_engine) == before
    assert await ledger_sum(loyalty_engine, account.name) == (30, 30)


async def test_errors_carry_the_loyalty_error_domain(loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await loyalty_stub.RedeemPoints(redeem(account.name, 1), timeout=5)
    status = status_of(raised.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("INSUFFICIENT_POINTS", "loyalty.crm")


async def test_goodwill_is_recorded_with_its_kind_reason_and_the_caller_as_actor(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    granted = await loyalty_stub.GrantGoodwill(
        loyalty_service_pb2.GrantGoodwillRequest(
            account=account.name, points=500, reason="complaints/42: dropped calls", request_id=request_id()
        ),
        metadata=(("x-crm-caller-subject", "agent-dilnoza"), ("x-crm-caller-kind", "employee")),
        timeout=5,
    )
    assert (granted.kind, granted.points, granted.reason) == (
        loyalty_pb2.ENTRY_KIND_GOODWILL,
        500,
        "complaints/42: dropped calls",
    )
    assert granted.actor == "agent-dilnoza"
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account.name), timeout=5)
    assert found.lifetime_earned_points == 500


async def test_entries_are_listed_newest_first_a_page_at_a_time(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    for points in (1, 2, 3, 4, 5):
        await loyalty_stub.EarnPoints(earn(account.name, points), timeout=5)
    seen: list[int] = []
    token = ""
    while True:
        page = await loyalty_stub.ListEntries(
            loyalty_service_pb2.ListEntriesRequest(parent=account.name, page_size=2, page_token=token), timeout=5
        )
        seen += [entry.points for entry in page.entries]
        token = page.next_page_token
        if not token:
            break
    assert seen == [5, 4, 3, 2, 1]


async def test_a_page_token_of_another_account_is_invalid_argument(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    for points in (1, 2):
        await loyalty_stub.EarnPoints(earn(account.name, points), timeout=5)
    page = await loyalty_stub.ListEntries(
        loyalty_service_pb2.ListEntriesRequest(parent=account.name, page_size=1), timeout=5
    )
    other = f"accounts/{uuid.uuid4()}"
    code, error = await failure(
        loyalty_stub.ListEntries(
            loyalty_service_pb2.ListEntriesRequest(parent=other, page_token=page.next_page_token), timeout=5
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in error.message


async def test_listing_the_entries_of_an_unknown_account_is_not_found(loyalty_stub: LoyaltyServiceStub):
    code, error = await failure(
        loyalty_stub.ListEntries(loyalty_service_pb2.ListEntriesRequest(parent=f"accounts/{uuid.uuid4()}"), timeout=5)
    )
    assert (code, error.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
