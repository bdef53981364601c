"""Background loops retry a failing step with a growing wait and one warning, not one per attempt."""

import asyncio
import itertools
import logging

import pytest

from chassis.background import MAX_FAILURE_BACKOFF_SECONDS, RepeatingTask


async def test_a_failing_step_is_retried_with_a_doubling_wait_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    async def failing() -> bool:
        attempts.append(loop.time())
        raise ConnectionError("database is down")

    task = RepeatingTask("numbering", failing, interval_seconds=0.02)
    with caplog.at_level(logging.DEBUG, logger="crm.background"):
        task.start()
        async with asyncio.timeout(5):
            while len(attempts) < 5:
                await asyncio.sleep(0.01)
        await task.stop()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # A sleep never ends early: each wait is at least twice the one before, starting at the interval.
    assert all(gap >= 0.02 * 2**n * 0.99 for n, gap in enumerate(gaps))
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1


async def test_a_step_that_works_again_resets_the_wait() -> None:
    outcomes = iter([False, False, True])
    calls = 0

    async def flaky() -> bool:
        nonlocal calls
        calls += 1
        if next(outcomes, True) is False:
            raise ConnectionError("database is down")
        return False

    task = RepeatingTask("numbering", flaky, interval_seconds=0.01)
    task.start()
    async with asyncio.timeout(5):
        while calls < 4:
            await asyncio.sleep(0.005)
    await task.stop()
    assert task.failures == 0


def test_the_wait_after_failures_is_capped() -> None:
    task = RepeatingTask("numbering", lambda: asyncio.sleep(0, False), interval_seconds=1.0)
    task.failures = 50
    assert task._failure_backoff() == MAX_FAILURE_BACKOFF_SECONDS
