"""Admission in a real chassis server, step by step: calls are held inside a handler until the test
lets them go, so what is admitted, queued or refused is seen without timing anything.

The server admits one call at a time and queues three, and it is built both ways the chassis builds
one: as a service behind the gateway (whose caller is the `x-crm-caller-subject` the gateway sets)
and as the gateway (whose caller is the user it authenticates, `x-crm-user`).
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chassis.server import ServiceServer, build_server
from chassis.settings import ServerSettings
from chassis.status import status_of

SERVICE = "crm.test.v1.HeldService"
HOLD = f"/{SERVICE}/Hold"
MIN_DEADLINE_SECONDS = 1.0


@dataclass
class HeldCalls:
    """A handler that records each call it starts (by its payload) and holds it until let go."""

    started: list[str] = field(default_factory=list)
    _gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))

    async def hold(self, payload: bytes, context: object) -> bytes:
        self.started.append(payload.decode())
        await self._gate.acquire()
        return b""

    async def let_one_go_and_see_who_starts(self) -> str:
        count = len(self.started)
        self._gate.release()
        async with asyncio.timeout(5):
            while len(self.started) == count:
                await asyncio.sleep(0.01)
        return self.started[-1]

    def let_all_go(self) -> None:
        for _ in range(100):
            self._gate.release()


@dataclass
class HeldServer:
    """The running server, a client channel to it, and every call the test started."""

    held: HeldCalls
    channel: grpc.aio.Channel
    caller_key: str
    """The metadata key that names the caller to this server."""
    calls: list["asyncio.Task[bytes]"] = field(default_factory=list)

    def call(self, label: str, caller: str, timeout: float = 10) -> "asyncio.Task[bytes]":
        """Starts a call of `caller`, identified in the handler by `label`."""
        hold: Callable[..., Awaitable[bytes]] = self.channel.unary_unary(HOLD)

        async def held_call() -> bytes:
            return await hold(label.encode(), metadata=((self.caller_key, caller),), timeout=timeout)

        task = asyncio.create_task(held_call())
        self.calls.append(task)
        return task


def held_calls_server(held: HeldCalls, *, trust_caller_metadata: bool) -> ServiceServer:
    """A chassis server of one held method that admits one call at a time and queues three."""
    settings = ServerSettings(
        address="127.0.0.1:0",
        max_concurrent_rpcs=1,
        max_queued_rpcs=3,
        # Longer than any call here: a refusal seen while calls are still held came at once, not after a wait.
        max_queue_wait_seconds=60,
        min_deadline_seconds=MIN_DEADLINE_SECONDS,
        shutdown_drain_seconds=0,
        shutdown_grace_seconds=1,
    )
    return build_server(
        settings=settings,
        error_domain="test.crm",
        service_names=[SERVICE],
        register=lambda grpc_server: grpc_server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, {"Hold": grpc.unary_unary_rpc_method_handler(held.hold)})]
        ),
        trust_caller_metadata=trust_caller_metadata,
    )


ROLES = {"service behind the gateway": (True, "x-crm-caller-subject"), "gateway": (False, "x-crm-user")}


@pytest.fixture(params=list(ROLES))
async def server(request: pytest.FixtureRequest) -> AsyncIterator[HeldServer]:
    trust_caller_metadata, caller_key = ROLES[request.param]
    held = HeldCalls()
    built = held_calls_server(held, trust_caller_metadata=trust_caller_metadata)
    await built.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{built.port}") as channel:
            running = HeldServer(held, channel, caller_key)
            try:
                yield running
            finally:
                held.let_all_go()
                if running.calls:
                    await asyncio.wait(running.calls, timeout=2)
                for task in running.calls:
                    task.cancel()
                await asyncio.gather(*running.calls, return_exceptions=True)
    finally:
        await built.stop()


async def queued(server: HeldServer, label: str, caller: str) -> "asyncio.Task[bytes]":
    """A call that the server has taken in and keeps waiting (it neither started nor ended)."""
    task = server.call(label, caller)
    await asyncio.sleep(0.2)
    assert not task.done() and label not in server.held.started
    return task


async def refusal(task: "asyncio.Task[bytes]") -> tuple[grpc.StatusCode, str]:
    """The code and ErrorInfo reason a call ended with, within a second."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(task, timeout=1)
    info = error_details_pb2.ErrorInfo()
    status = status_of(raised.value)
    assert status is not None and status.details[0].Unpack(info)
    return raised.value.code(), info.reason


async def flood_filling_the_queue(server: HeldServer) -> None:
    """One call of the flooding caller at work and three waiting: the queue is full."""
    server.call("flood-1", "export-job")
    await asyncio.sleep(0.2)
    assert server.held.started == ["flood-1"]
    for n in (2, 3, 4):
        await queued(server, f"flood-{n}", "export-job")


async def test_a_quiet_callers_call_takes_the_place_of_the_floods_newest_in_a_full_queue(server: HeldServer):
    await flood_filling_the_queue(server)
    await queued(server, "quiet-1", "agent-dilnoza")
    assert await refusal(server.calls[3]) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SERVER_OVERLOADED")


async def test_freed_slots_go_to_the_callers_in_turn_so_a_quiet_caller_is_not_behind_the_flood(server: HeldServer):
    await flood_filling_the_queue(server)
    await queued(server, "quiet-1", "agent-dilnoza")
    started = [await server.held.let_one_go_and_see_who_starts() for _ in range(3)]
    assert started == ["flood-2", "quiet-1", "flood-3"]


async def test_a_flooding_callers_call_beyond_the_queue_is_refused_at_once(server: HeldServer):
    await flood_filling_the_queue(server)
    assert await refusal(server.call("flood-5", "export-job")) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "SERVER_OVERLOADED",
    )
    assert server.held.started == ["flood-1"]


async def test_health_answers_the_flooding_caller_while_every_slot_and_the_whole_queue_are_taken(
    server: HeldServer,
):
    await flood_filling_the_queue(server)
    health = health_pb2_grpc.HealthStub(server.channel)
    flooding_caller = ((server.caller_key, "export-job"),)
    answers = [
        await health.Check(health_pb2.HealthCheckRequest(service=name), metadata=flooding_caller, timeout=1)
        for name in ("", SERVICE, "liveness")
    ]
    assert [answer.status for answer in answers] == [health_pb2.HealthCheckResponse.SERVING] * 3


async def test_a_call_whose_deadline_is_too_short_is_refused_before_its_handler_starts(server: HeldServer):
    short = server.call("hurried", "agent-dilnoza", timeout=MIN_DEADLINE_SECONDS / 2)
    assert await refusal(short) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_TOO_SHORT")
    assert server.held.started == []


async def test_at_the_gateway_a_caller_naming_itself_anew_in_each_call_gets_no_extra_share():
    held = HeldCalls()
    gateway = held_calls_server(held, trust_caller_metadata=False)
    await gateway.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            hold: Callable[..., Awaitable[bytes]] = channel.unary_unary(HOLD)

            def call(label: str, forged_subject: str) -> "asyncio.Task[bytes]":
                # The same user each time, claiming another gateway-set identity in every call.
                metadata = (("x-crm-user", "export-job"), ("x-crm-caller-subject", forged_subject))

                async def held_call() -> bytes:
                    return await hold(label.encode(), metadata=metadata, timeout=10)

                return asyncio.create_task(held_call())

            calls = [call(f"flood-{n}", f"forged-{n}") for n in range(1, 5)]
            await asyncio.sleep(0.3)
            extra = call("flood-5", "forged-5")
            code, reason = await refusal(extra)
            assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "SERVER_OVERLOADED")
            held.let_all_go()
            await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await gateway.stop()
