"""Background work of a server (outbox numbering, evaluators, publishers): one repeating loop."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("crm.background")


# A failing step is retried after a wait that doubles up to this, so a database that is down is not
# hammered (and the log not flooded) by every background loop at its normal pace.
MAX_FAILURE_BACKOFF_SECONDS = 5.0


class RepeatingTask:
    """Runs `step` over and over until stopped: again at once while it says more work is waiting,
    after `interval_seconds` otherwise. A failing step is retried, because its database or peer may
    come back: after the interval, then doubling up to MAX_FAILURE_BACKOFF_SECONDS; the first
    failure is logged as a warning with its cause, repeats only at debug level until a step succeeds."""

    def __init__(self, name: str, step: Callable[[], Awaitable[bool]], interval_seconds: float) -> None:
        self.name = name
        self._step = step
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        """Steps failed in a row."""

    def start(self) -> None:
        """Starts the loop on the running event loop."""
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stops the loop; work left over is picked up by the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                more_waiting = await self._step()
            except Exception:
                self.failures += 1
                if self.failures == 1:
                    log.warning("%s failed; retrying with back-off", self.name, exc_info=True)
                else:
                    log.debug("%s failed again (%d in a row)", self.name, self.failures, exc_info=True)
                await asyncio.sleep(self._failure_backoff())
                continue
            if self.failures:
                log.info("%s works again after %d failures", self.name, self.failures)
                self.failures = 0
            if not more_waiting:
                await asyncio.sleep(self._interval)

    def _failure_backoff(self) -> float:
        return float(min(self._interval * 2 ** (self.failures - 1), MAX_FAILURE_BACKOFF_SECONDS))
