"""Random sequences of earn, goodwill, redeem, reserve, capture, release, expire and reverse sent to
the real service, checked after every step against a simple in-memory model (a balance, reserved
points, and lots spent oldest first) and against what the database holds.

Points are valid for one second here, so the `expire` step moves the service's clock a second on,
past every lot and short hold, and then runs the scheduled work: the model expires all that is left.
Hypothesis drives the machine synchronously, so it runs in a worker thread and hands each call to
the event loop the in-process server runs on (the clock moves only between calls).
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy.ext.asyncio import AsyncEngine

from chassis.clock import ManualClock
from chassis.status import from_rpc_error
from crm.loyalty.v1 import loyalty_pb2, loyalty_service_pb2, program_pb2, rewards_pb2
from crm.loyalty.v1.loyalty_service_pb2_grpc import LoyaltyServiceStub
from tests.integration.loyalty.ledger_checks import holdings_state, ledger_state, lot_remainders, qualifying_state
from tests.support import request_id

T = TypeVar("T")
PRICE = 60
PARTNER = "model-shop"
VALIDITY_SECONDS = 1


@dataclass
class Lot:
    """Points of one credit in the model: when they lapse and how many are left."""

    expire_time: datetime
    remaining: int


@dataclass
class HeldReservation:
    """A reservation in the model and the lots its points came from."""

    name: str
    expire_time: datetime
    draws: list[tuple[int, int]]
    state: str = "HELD"


@dataclass
class Model:
    """What the ledger should hold."""

    balance: int = 0
    reserved: int = 0
    qualifying: int = 0
    """Points earned (not granted) and not reversed; all within the qualification window here."""
    lots: dict[int, Lot] = field(default_factory=dict)
    draws: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def draw(self, points: int, first: int | None = None) -> list[tuple[int, int]]:
        order = sorted(self.lots, key=lambda n: (n != first, self.lots[n].expire_time, n))
        taken: list[tuple[int, int]] = []
        for number in order:
            take = min(self.lots[number].remaining, points - sum(p for _, p in taken))
            if take > 0:
                self.lots[number].remaining -= take
                taken.append((number, take))
        assert sum(p for _, p in taken) == points
        return taken

    def restore(self, draws: list[tuple[int, int]]) -> None:
        for number, points in draws:
            self.lots[number].remaining += points


def number_of(entry_name: str) -> int:
    return int(entry_name.rsplit("/", 1)[1])


def machine_against(
    stub: LoyaltyServiceStub, engine: AsyncEngine, clock: ManualClock, loop: asyncio.AbstractEventLoop, reward: str
) -> type:
    """A state machine class bound to the service behind `stub`, its clock and its database."""

    def call(start: Callable[[], Awaitable[T]]) -> T:
        """Runs the awaitable `start` makes on the server's loop (gRPC calls must begin there)."""

        async def on_loop() -> T:
            return await start()

        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout=60)

    def refused(method: str, request: Any) -> str:
        """Sends a request that must fail with FAILED_PRECONDITION; returns the reason."""
        try:
            call(lambda: getattr(stub, method)(request, timeout=10))
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            return from_rpc_error(error).reason
        raise AssertionError(f"{method} succeeded but the model says it must fail")

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
            self.model = Model()
            self.entries: dict[str, loyalty_pb2.LedgerEntry] = {}
            self.reversed: set[str] = set()
            self.reservations: dict[str, HeldReservation] = {}
            self.last_request: tuple[str, Any, Any] | None = None

        def _remember(self, method: str, request: Any, answer: Any, entry: loyalty_pb2.LedgerEntry) -> None:
            self.entries[entry.name] = entry
            self.last_request = (method, request, answer)

        def _credit(self, method: str, request: Any, points: int) -> None:
            entry = call(lambda: getattr(stub, method)(request, timeout=10))
            self.model.balance += points
            assert (entry.points, entry.balance_after) == (points, self.model.balance)
            self.model.lots[number_of(entry.name)] = Lot(entry.expire_time.ToDatetime(tzinfo=UTC), points)
            self._remember(method, request, entry, entry)

        @rule(points=st.integers(1, 300))
        def earn(self, points: int) -> None:
            request = loyalty_service_pb2.EarnPointsRequest(
                account=self.account, points=points, reason="usage", request_id=request_id()
            )
            self._credit("EarnPoints", request, points)
            self.model.qualifying += points

        @rule(points=st.integers(1, 100))
        def grant_goodwill(self, points: int) -> None:
            request = loyalty_service_pb2.GrantGoodwillRequest(
                account=self.account, points=points, reason="complaint", request_id=request_id()
            )
            self._credit("GrantGoodwill", request, points)

        @rule(points=st.integers(1, 400))
        def redeem(self, points: int) -> None:
            request = loyalty_service_pb2.RedeemPointsRequest(
                account=self.account, points=points, reason="reward", request_id=request_id()
            )
            if points > self.model.balance:
                assert refused("RedeemPoints", request) == "INSUFFICIENT_POINTS"
                return
            entry = call(lambda: stub.RedeemPoints(request, timeout=10))
            self.model.balance -= points
            assert entry.balance_after == self.model.balance
            self.model.draws[entry.name] = self.model.draw(points)
            self._remember("RedeemPoints", request, entry, entry)

        @rule(short_hold=st.booleans())
        def reserve(self, short_hold: bool) -> None:
            request = loyalty_service_pb2.ReserveRewardRequest(
                account=self.account,
                reward=reward,
                partner=PARTNER,
                hold_duration=Duration(seconds=1 if short_hold else 3600),
                request_id=request_id(),
            )
            if self.model.balance < PRICE:
                assert refused("ReserveReward", request) == "INSUFFICIENT_POINTS"
                return
            held = call(lambda: stub.ReserveReward(request, timeout=10))
            self.model.balance -= PRICE
            self.model.reserved += PRICE
            entry = call(
                lambda: stub.ListEntries(
                    loyalty_service_pb2.ListEntriesRequest(parent=self.account, page_size=1), timeout=5
                )
            ).entries[0]
            assert entry.name == held.reserve_entry
            self.reservations[held.name] = HeldReservation(
                held.name, held.expire_time.ToDatetime(tzinfo=UTC), self.model.draw(PRICE)
            )
            self._remember("ReserveReward", request, held, entry)

        def _settle(self, data: st.DataObject, capturing: bool) -> None:
            reservation = self.reservations[data.draw(st.sampled_from(sorted(self.reservations)))]
            if capturing:
                request: Any = loyalty_service_pb2.CaptureReservationRequest(
                    name=reservation.name, request_id=request_id()
                )
                method = "CaptureReservation"
            else:
                request = loyalty_service_pb2.ReleaseReservationRequest(name=reservation.name, request_id=request_id())
                method = "ReleaseReservation"
            if reservation.state != "HELD":
                assert refused(method, request) == "RESERVATION_SETTLED"
                return
            if capturing and clock.now() >= reservation.expire_time:
                assert refused(method, request) == "RESERVATION_EXPIRED"
                return
            settled = call(lambda: getattr(stub, method)(request, timeout=10))
            self.model.reserved -= PRICE
            if capturing:
                reservation.state = "CAPTURED"
            else:
                reservation.state = "RELEASED"
                self.model.balance += PRICE
                self.model.restore(reservation.draws)
            entry = call(
                lambda: stub.ListEntries(
                    loyalty_service_pb2.ListEntriesRequest(parent=self.account, page_size=1), timeout=5
                )
            ).entries[0]
            assert entry.name == settled.settle_entry
            self._remember(method, request, settled, entry)

        @precondition(lambda self: bool(self.reservations))
        @rule(data=st.data())
        def capture(self, data: st.DataObject) -> None:
            self._settle(data, capturing=True)

        @precondition(lambda self: bool(self.reservations))
        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            self._settle(data, capturing=False)

        @rule()
        def expire(self) -> None:
            """Moves the clock past every lot and short hold, then runs the scheduled work twice."""
            now = clock.advance(timedelta(seconds=VALIDITY_SECONDS))
            for _ in range(2):
                call(lambda: stub.RunScheduledWork(loyalty_service_pb2.RunScheduledWorkRequest(), timeout=60))
            for reservation in self.reservations.values():
                if reservation.state == "HELD" and reservation.expire_time <= now:
                    reservation.state = "EXPIRED"
                    self.model.reserved -= PRICE
                    self.model.balance += PRICE
                    self.model.restore(reservation.draws)
            lapsed = sum(lot.remaining for lot in self.model.lots.values() if lot.expire_time <= now)
            for lot in self.model.lots.values():
                if lot.expire_time <= now:
                    lot.remaining = 0
            self.model.balance -= lapsed
            self.last_request = None

        @precondition(lambda self: bool(self.entries))
        @rule(data=st.data())
        def reverse(self, data: st.DataObject) -> None:
            target = self.entries[data.draw(st.sampled_from(sorted(self.entries)))]
            request = loyalty_service_pb2.ReverseEntryRequest(name=target.name, request_id=request_id())
            kind = target.kind
            if kind not in (
                loyalty_pb2.ENTRY_KIND_EARN,
                loyalty_pb2.ENTRY_KIND_GOODWILL,
                loyalty_pb2.ENTRY_KIND_REDEEM,
                loyalty_pb2.ENTRY_KIND_CAPTURE,
            ):
                assert refused("ReverseEntry", request) == "NOT_REVERSIBLE"
                return
            if target.name in self.reversed:
                assert refused("ReverseEntry", request) == "ALREADY_REVERSED"
                return
            if kind in (loyalty_pb2.ENTRY_KIND_EARN, loyalty_pb2.ENTRY_KIND_GOODWILL):
                if target.points > self.model.balance:
                    assert refused("ReverseEntry", request) == "INSUFFICIENT_POINTS"
                    return
                change = -target.points
            else:
                change = -target.points if kind == loyalty_pb2.ENTRY_KIND_REDEEM else PRICE
            entry = call(lambda: stub.ReverseEntry(request, timeout=10))
            self.model.balance += change
            assert (entry.points, entry.balance_after) == (change, self.model.balance)
            if kind == loyalty_pb2.ENTRY_KIND_EARN:
                self.model.qualifying -= target.points
            if change < 0:
                self.model.draw(-change, first=number_of(target.name))
            elif kind == loyalty_pb2.ENTRY_KIND_REDEEM:
                self.model.restore(self.model.draws[target.name])
            else:
                held = next(
                    r for r in self.reservations.values() if r.name.endswith(target.reservation.rsplit("/", 1)[1])
                )
                self.model.restore(held.draws)
            self.reversed.add(target.name)
            self._remember("ReverseEntry", request, entry, entry)

        @precondition(lambda self: self.last_request is not None)
        @rule()
        def retry_the_last_request(self) -> None:
            assert self.last_request is not None
            method, request, first_answer = self.last_request
            assert call(lambda: getattr(stub, method)(request, timeout=10)) == first_answer

        @invariant()
        def the_service_and_the_database_agree_with_the_model(self) -> None:
            account = call(lambda: stub.GetAccount(loyalty_service_pb2.GetAccountRequest(name=self.account), timeout=5))
            assert (account.available_points, account.reserved_points) == (self.model.balance, self.model.reserved)
            assert self.model.balance >= 0 and self.model.reserved >= 0
            state = call(lambda: ledger_state(engine, self.account))
            assert state["balance"] == state["points"] == state["in_lots"] == self.model.balance
            assert state["reserved"] == state["reserved_changes"] == self.model.reserved
            assert sum(lot.remaining for lot in self.model.lots.values()) == self.model.balance
            model_lots = {number: lot.remaining for number, lot in self.model.lots.items()}
            assert call(lambda: lot_remainders(engine, self.account)) == model_lots
            tiers = call(
                lambda: stub.GetTierStatus(
                    loyalty_service_pb2.GetTierStatusRequest(name=f"{self.account}/tierStatus"), timeout=5
                )
            )
            assert tiers.qualifying_points == self.model.qualifying
            running_total, in_lots = call(lambda: qualifying_state(engine, self.account))
            assert running_total == in_lots
            counted, scanned = call(lambda: holdings_state(engine))
            assert counted == scanned

    return ServiceLedgerMachine


def short_validity(program: program_pb2.Program) -> None:
    program.points_validity.CopyFrom(Duration(seconds=VALIDITY_SECONDS))


async def test_random_operation_sequences_keep_the_service_ledger_consistent(
    loyalty_stub: LoyaltyServiceStub, loyalty_engine: AsyncEngine, loyalty_clock: ManualClock, program_changed: Any
):
    reward_id = f"model-prize-{uuid.uuid4().hex[:8]}"
    await loyalty_stub.CreateReward(
        loyalty_service_pb2.CreateRewardRequest(
            reward=rewards_pb2.Reward(
                display_name="Model prize", kind=rewards_pb2.REWARD_KIND_PRIZE, points_price=PRICE
            ),
            reward_id=reward_id,
            request_id=request_id(),
        ),
        timeout=5,
    )
    await loyalty_stub.RestockReward(
        loyalty_service_pb2.RestockRewardRequest(
            reward=f"rewards/{reward_id}", partner=PARTNER, quantity=100_000, request_id=request_id()
        ),
        timeout=5,
    )
    async with program_changed(short_validity):
        machine = machine_against(
            loyalty_stub, loyalty_engine, loyalty_clock, asyncio.get_running_loop(), f"rewards/{reward_id}"
        )
        bounded = settings(max_examples=10, stateful_step_count=20, deadline=None, database=None)
        await asyncio.to_thread(run_state_machine_as_test, machine, settings=bounded)
