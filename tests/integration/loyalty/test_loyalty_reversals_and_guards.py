"""Reversals, rejected input and the database's own guards: what the ledger refuses, it never writes."""

import uuid

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.integration.loyalty.ledger_checks import entry_count, ledger_sum
from tests.support import failure, request_id


async def _earn(stub: LoyaltyServiceStub, account: str, points: int) -> loyalty_pb2.LedgerEntry:
    return await stub.EarnPoints(
        loyalty_service_pb2.EarnPointsRequest(account=account, points=points, reason="spend", request_id=request_id()),
        timeout=5,
    )


def _reverse(name: str) -> loyalty_service_pb2.ReverseEntryRequest:
    return loyalty_service_pb2.ReverseEntryRequest(name=name, reason="billed twice", request_id=request_id())


async def test_a_reversal_undoes_exactly_its_entry_and_names_it(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    await _earn(loyalty_stub, account.name, 100)
    mistaken = await _earn(loyalty_stub, account.name, 40)
    reversal = await loyalty_stub.ReverseEntry(_reverse(mistaken.name), timeout=5)
    assert (reversal.kind, reversal.points, reversal.balance_after) == (loyalty_pb2.ENTRY_KIND_REVERSE, -40, 100)
    assert reversal.reversed_entry == mistaken.name
    assert reversal.reason == "billed twice"
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account.name), timeout=5)
    assert (found.available_points, found.lifetime_earned_points) == (100, 100)
    assert await ledger_sum(loyalty_engine, account.name) == (100, 100)


async def test_reversing_a_redemption_gives_the_points_back(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    await _earn(loyalty_stub, account.name, 50)
    spent = await loyalty_stub.RedeemPoints(
        loyalty_service_pb2.RedeemPointsRequest(
            account=account.name, points=50, reason="prize", request_id=request_id()
        ),
        timeout=5,
    )
    reversal = await loyalty_stub.ReverseEntry(_reverse(spent.name), timeout=5)
    assert (reversal.points, reversal.balance_after) == (50, 50)
    found = await loyalty_stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=account.name), timeout=5)
    assert found.lifetime_redeemed_points == 0


async def test_reversing_an_entry_twice_is_already_reversed(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    earned = await _earn(loyalty_stub, account.name, 10)
    await loyalty_stub.ReverseEntry(_reverse(earned.name), timeout=5)
    code, error = await failure(loyalty_stub.ReverseEntry(_reverse(earned.name), timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_REVERSED")
    assert await ledger_sum(loyalty_engine, account.name) == (0, 0)


async def test_reversing_a_reversal_is_failed_precondition(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    earned = await _earn(loyalty_stub, account.name, 10)
    reversal = await loyalty_stub.ReverseEntry(_reverse(earned.name), timeout=5)
    code, error = await failure(loyalty_stub.ReverseEntry(_reverse(reversal.name), timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_REVERSIBLE")


async def test_reversing_an_earning_already_spent_is_insufficient_points(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    earned = await _earn(loyalty_stub, account.name, 60)
    await loyalty_stub.RedeemPoints(
        loyalty_service_pb2.RedeemPointsRequest(
            account=account.name, points=30, reason="prize", request_id=request_id()
        ),
        timeout=5,
    )
    code, error = await failure(loyalty_stub.ReverseEntry(_reverse(earned.name), timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_POINTS")
    assert await ledger_sum(loyalty_engine, account.name) == (30, 30)


async def test_reversing_an_entry_that_does_not_exist_is_not_found(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account
):
    code, error = await failure(loyalty_stub.ReverseEntry(_reverse(f"{account.name}/entries/99"), timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.NOT_FOUND, "ENTRY_NOT_FOUND")


BAD_REQUESTS = {
    "zero points": ("EarnPoints", {"points": 0}, "points"),
    "negative points": ("RedeemPoints", {"points": -5}, "points"),
    "too many points": ("EarnPoints", {"points": 10**12}, "points"),
    "missing reason": ("EarnPoints", {"reason": "  "}, "reason"),
    "goodwill without a reason": ("GrantGoodwill", {"reason": ""}, "reason"),
    "missing request id": ("EarnPoints", {"request_id": ""}, "request_id"),
    "malformed account name": ("EarnPoints", {"account": "accounts/not-a-uuid"}, "account"),
    "foreign resource name": ("RedeemPoints", {"account": f"customers/{uuid.uuid4()}"}, "account"),
    "nested account name": ("GrantGoodwill", {"account": f"accounts/{uuid.uuid4()}/entries/1"}, "account"),
    "malformed entry name": ("ReverseEntry", {"name": "accounts/x/entries/1"}, "name"),
    "entry number zero": ("ReverseEntry", {"name": f"accounts/{uuid.uuid4()}/entries/0"}, "name"),
    "foreign entry name": ("ReverseEntry", {"name": f"customers/{uuid.uuid4()}/invoices/1"}, "name"),
    "open with an account name": ("OpenAccount", {"customer": f"accounts/{uuid.uuid4()}"}, "customer"),
}


def _bad_request(method: str, account: str, changes: dict[str, object]) -> object:
    if method == "ReverseEntry":
        fields: dict[str, object] = {"name": f"{account}/entries/1", "request_id": request_id()}
    elif method == "OpenAccount":
        fields = {"customer": f"customers/{uuid.uuid4()}", "request_id": request_id()}
    else:
        fields = {"account": account, "points": 10, "reason": "spend", "request_id": request_id()}
    request_type = getattr(loyalty_service_pb2, f"{method}Request")
    return request_type(**{**fields, **changes})


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
async def test_bad_input_is_invalid_argument_naming_the_field_and_writes_nothing(
    case: str, loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    method, changes, field = BAD_REQUESTS[case]
    await _earn(loyalty_stub, account.name, 20)
    before = await entry_count(loyalty_engine)
    code, error = await failure(getattr(loyalty_stub, method)(_bad_request(method, account.name, changes), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]  # type: ignore[attr-defined]
    assert await entry_count(loyalty_engine) == before
    assert await ledger_sum(loyalty_engine, account.name) == (20, 20)


@pytest.mark.parametrize("method", ["EarnPoints", "RedeemPoints", "GrantGoodwill"])
async def test_points_for_an_unknown_account_are_not_found_and_write_nothing(
    method: str, loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine
):
    before = await entry_count(loyalty_engine)
    request = _bad_request(method, f"accounts/{uuid.uuid4()}", {})
    code, error = await failure(getattr(loyalty_stub, method)(request, timeout=5))
    assert (code, error.reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    assert await entry_count(loyalty_engine) == before


async def test_the_database_refuses_a_negative_balance_whatever_the_code_does(
    account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    with pytest.raises(DBAPIError, match="accounts_balance_not_negative"):
        async with loyalty_engine.begin() as connection:
            await connection.execute(
                text("UPDATE accounts SET balance = balance - 1 WHERE id = :id"),
                {"id": account.name.removeprefix("accounts/")},
            )


async def test_the_database_refuses_to_change_or_delete_a_ledger_entry(
    loyalty_stub: LoyaltyServiceStub, account: loyalty_pb2.Account, loyalty_engine: AsyncEngine
):
    await _earn(loyalty_stub, account.name, 5)
    account_id = account.name.removeprefix("accounts/")
    for statement in (
        "UPDATE ledger_entries SET points = 500 WHERE account_id = :id",
        "DELETE FROM ledger_entries WHERE account_id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with loyalty_engine.begin() as connection:
                await connection.execute(text(statement), {"id": account_id})
    assert await ledger_sum(loyalty_engine, account.name) == (5, 5)
