"""Background work of a server (outbox numbering, evaluators, publishers): one repeating loop."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("crm.background")


class RepeatingTask:
    """Runs `step` over and over until stopped: again at once while it says more work is waiting,
    after `interval_seconds` otherwise. A failing step is logged and retried after the interval,
    because its database or peer may come back."""

    def __init__(self, name: str, step: Callable[[], Awaitable[bool]], interval_seconds: float) -> None:
        self.name = name
        self._step = step
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

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
                log.warning("%s failed; retrying", self.name, exc_info=True)
                more_waiting = False
            if not more_waiting:
                await asyncio.sleep(self._interval)
