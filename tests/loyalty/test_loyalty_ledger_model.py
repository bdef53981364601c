"""Random sequences of earn, redeem, goodwill and reverse sent to the real service, checked after
every step against a simple model and against what the database holds.

Hypothesis drives the machine synchronously, so it runs in a worker thread and hands each call to
the event loop the in-process server runs on.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.status import from_rpc_error
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.loyalty.ledger_checks import ledger_sum
from tests.support import request_id

T = TypeVar("T")


def machine_against(stub: LoyaltyServiceStub, engine: AsyncEngine, loop: asyncio.AbstractEventLoop) -> type:
    """A state machine class bound to the service behind `stub` and its database."""

    def call(start: Callable[[], Awaitable[T]]) -> T:
        """Runs the awaitable `start` makes on the server's loop (gRPC calls must begin there)."""

        async def on_loop() -> T:
            return await start()

        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout=30)

    class ServiceLedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            opened = call(
                lambda: stub.OpenAccount(
                    loyalty_service_pb2.OpenAccountRequest(
                        customer=f"customers/{uuid.uuid4()}", request_id=request_id()
                    ),
                    timeout=5,
                )
            )
            self.account = opened.name
            self.balance = 0
            self.entries: dict[str, loyalty_pb2.LedgerEntry] = {}
            self.reversed: set[str] = set()
            self.last_request: tuple[str, Any, loyalty_pb2.LedgerEntry] | None = None

        def _send(self, method: str, request: Any, expected_change: int) -> None:
            try:
                entry = call(lambda: getattr(stub, method)(request, timeout=10))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert from_rpc_error(error).reason == "INSUFFICIENT_POINTS"
                assert self.balance + expected_change < 0
                return
            assert self.balance + expected_change >= 0
            assert (entry.points, entry.balance_after) == (expected_change, self.balance + expected_change)
            self.balance += expected_change
            self.entries[entry.name] = entry
            self.last_request = (method, request, entry)

        @rule(points=st.integers(1, 400))
        def earn(self, points: int) -> None:
            request = loyalty_service_pb2.EarnPointsRequest(
                account=self.account, points=points, reason="usage", request_id=request_id()
            )
            self._send("EarnPoints", request, points)

        @rule(points=st.integers(1, 600))
        def redeem(self, points: int) -> None:
            request = loyalty_service_pb2.RedeemPointsRequest(
                account=self.account, points=points, reason="reward", request_id=request_id()
            )
            self._send("RedeemPoints", request, -points)

        @rule(points=st.integers(1, 200))
        def grant_goodwill(self, points: int) -> None:
            request = loyalty_service_pb2.GrantGoodwillRequest(
                account=self.account, points=points, reason="complaint", request_id=request_id()
            )
            self._send("GrantGoodwill", request, points)

        @precondition(lambda self: bool(self.entries))
        @rule(data=st.data())
        def reverse(self, data: st.DataObject) -> None:
            target = self.entries[data.draw(st.sampled_from(sorted(self.entries)))]
            request = loyalty_service_pb2.ReverseEntryRequest(name=target.name, request_id=request_id())
            if target.kind == loyalty_pb2.ENTRY_KIND_REVERSE or target.name in self.reversed:
                try:
                    call(lambda: stub.ReverseEntry(request, timeout=10))
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
                    assert from_rpc_error(error).reason in {"NOT_REVERSIBLE", "ALREADY_REVERSED"}
                    return
                raise AssertionError(f"{target.name} was reversed although it may not be")
            count = len(self.entries)
            self._send("ReverseEntry", request, -target.points)
            if len(self.entries) > count:
                self.reversed.add(target.name)

        @precondition(lambda self: self.last_request is not None)
        @rule()
        def retry_the_last_request(self) -> None:
            assert self.last_request is not None
            method, request, first_answer = self.last_request
            assert call(lambda: getattr(stub, method)(request, timeout=10)) == first_answer

        @invariant()
        def the_service_and_the_database_agree_with_the_model(self) -> None:
            account = call(lambda: stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=self.account), timeout=5))
            assert account.available_points == self.balance >= 0
            assert account.entry_count == len(self.entries)
            assert call(lambda: ledger_sum(engine, self.account)) == (self.balance, self.balance)

    return ServiceLedgerMachine


async def test_random_operation_sequences_keep_the_service_ledger_consistent(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine
):
    machine = machine_against(loyalty_stub, loyalty_engine, asyncio.get_running_loop())
    bounded = settings(max_examples=12, stateful_step_count=15, deadline=None, database=None)
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=bounded)
