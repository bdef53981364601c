"""Extra server processes of one service sharing its port (SO_REUSEPORT), for pods with several cores.

The first process serves calls and runs the background work; the others (`python -m <service> worker`)
only serve calls. They stop with the first: on its way out it sends them SIGTERM and waits for their
graceful shutdown, and a worker whose first process died without doing so stops itself.
"""

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chassis.settings import ServerSettings

log = logging.getLogger("crm.server")

_ORPHAN_CHECK_SECONDS = 1.0
# Tells a worker which process started it: it may start only after that one already died.
_FIRST_PROCESS_VARIABLE = "CRM_FIRST_PROCESS_PID"


@asynccontextmanager
async def worker_processes(module: str, settings: ServerSettings) -> AsyncIterator[None]:
    """Runs `settings.workers - 1` workers of `module` while the block runs."""
    workers = [_start_worker(module) for _ in range(settings.workers - 1)]
    if workers:
        log.info("started workers", extra={"workers": [worker.pid for worker in workers]})
    try:
        yield
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        limit = settings.shutdown_drain_seconds + settings.shutdown_grace_seconds + 5
        await asyncio.gather(*(asyncio.to_thread(_wait_or_kill, worker, limit) for worker in workers))


@asynccontextmanager
async def stopping_when_orphaned() -> AsyncIterator[None]:
    """In a worker: sends itself SIGTERM (a graceful stop) once the process that started it is gone."""
    parent = int(os.environ.get(_FIRST_PROCESS_VARIABLE, "0") or os.getppid())

    async def watch() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 - no event tells that a parent died; polling does
            await asyncio.sleep(_ORPHAN_CHECK_SECONDS)
        log.warning("the first process of the service is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = asyncio.create_task(watch(), name="orphan-watch")
    try:
        yield
    finally:
        watcher.cancel()


def _start_worker(module: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, _FIRST_PROCESS_VARIABLE: str(os.getpid())}
    return subprocess.Popen([sys.executable, "-m", module, "worker"], env=environment)


def _wait_or_kill(worker: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        worker.wait(seconds)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
