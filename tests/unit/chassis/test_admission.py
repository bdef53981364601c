"""Admission under load: a bounded number of calls at work, a short queue served to callers in turn,
the busiest caller refused first when it is full, and early refusal of what cannot be served in time."""

import asyncio

import pytest

from chassis.admission import Admission, AdmissionLimits
from chassis.errors import DeadlineExceeded, ResourceExhausted


def admission(*, concurrent: int = 1, queued: int = 10, wait: float = 5.0, min_remaining: float = 0.01) -> Admission:
    return Admission(
        AdmissionLimits(
            max_concurrent=concurrent,
            max_queued=queued,
            max_queue_wait_seconds=wait,
            min_remaining_seconds=min_remaining,
        )
    )


async def waiting(gate: Admission, caller: str) -> asyncio.Task[None]:
    """A call of `caller` that waits for a slot (the loop runs until it is queued)."""
    task = asyncio.create_task(gate.admit(caller, None))
    await asyncio.sleep(0)
    return task


async def test_calls_are_admitted_at_once_up_to_the_limit() -> None:
    gate = admission(concurrent=3)
    for _ in range(3):
        await asyncio.wait_for(gate.admit("a", None), 0.1)
    assert (gate.at_work, gate.queued) == (3, 0)


async def test_a_queued_call_gets_the_slot_a_finished_call_frees() -> None:
    gate = admission()
    await gate.admit("a", None)
    queued = await waiting(gate, "b")
    assert not queued.done()
    gate.release()
    await asyncio.wait_for(queued, 0.1)
    assert (gate.at_work, gate.queued) == (1, 0)


async def test_freed_slots_go_to_callers_in_turn_so_a_flood_does_not_delay_a_quiet_caller() -> None:
    gate = admission()
    await gate.admit("flood", None)
    flood = [await waiting(gate, "flood") for _ in range(5)]
    quiet = await waiting(gate, "quiet")
    gate.release()  # the flood's first waiting call
    await asyncio.sleep(0)
    gate.release()  # then the quiet caller's, ahead of the flood's four others
    await asyncio.wait_for(quiet, 0.1)
    assert [task.done() for task in flood] == [True, False, False, False, False]
    for task in flood[1:]:
        task.cancel()
    await asyncio.gather(*flood[1:], return_exceptions=True)


async def test_a_full_queue_refuses_the_busiest_callers_newest_call_to_make_room_for_a_quiet_one() -> None:
    gate = admission(queued=3)
    await gate.admit("flood", None)
    flood = [await waiting(gate, "flood") for _ in range(3)]
    quiet = await waiting(gate, "quiet")
    with pytest.raises(ResourceExhausted):
        await asyncio.wait_for(flood[2], 0.1)
    assert not quiet.done()
    assert gate.queued == 3
    for task in (*flood[:2], quiet):
        task.cancel()
    await asyncio.gather(*flood[:2], quiet, return_exceptions=True)


async def test_a_full_queue_refuses_the_busiest_caller_itself_at_once() -> None:
    gate = admission(queued=2)
    await gate.admit("flood", None)
    kept = [await waiting(gate, "flood") for _ in range(2)]
    with pytest.raises(ResourceExhausted) as refused:
        await asyncio.wait_for(gate.admit("flood", None), 0.1)
    assert refused.value.reason == "SERVER_OVERLOADED"
    for task in kept:
        task.cancel()
    await asyncio.gather(*kept, return_exceptions=True)


async def test_a_call_that_waited_its_longest_is_refused_and_leaves_the_queue() -> None:
    gate = admission(wait=0.05)
    await gate.admit("a", None)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ResourceExhausted):
        await gate.admit("b", None)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert gate.queued == 0


async def test_a_call_waits_no_longer_than_its_own_deadline_allows() -> None:
    gate = admission(wait=5.0, min_remaining=0.01)
    await gate.admit("a", None)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ResourceExhausted):
        await gate.admit("b", 0.06)
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_a_call_with_too_little_time_left_is_refused_before_it_waits() -> None:
    gate = admission(concurrent=5, min_remaining=0.05)
    with pytest.raises(DeadlineExceeded) as refused:
        await gate.admit("a", 0.01)
    assert refused.value.reason == "DEADLINE_TOO_SHORT"
    assert (gate.at_work, gate.queued) == (0, 0)


async def test_a_waiting_call_cancelled_by_its_client_leaves_the_queue() -> None:
    gate = admission()
    await gate.admit("a", None)
    queued = await waiting(gate, "b")
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)
    assert gate.queued == 0
    gate.release()
    assert gate.at_work == 0
