"""Resident memory of server processes once they have served and sat idle for a moment."""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import psutil

IDLE_SECONDS = 2.0
"""How long a process that reports SERVING sits without calls before its memory is read."""
MIB = 1 << 20


@dataclass(frozen=True)
class IdleMemory:
    """One process' resident set size while idle."""

    process: str
    """What it runs, as the launcher names it: "customer service", "loyalty service", "gateway"."""
    started_by: str
    """Which benchmark started it."""
    rss_mib: float


async def idle_memory(started_by: str, pids: Mapping[str, int]) -> list[IdleMemory]:
    """Lets the processes (already SERVING, by name) sit idle for IDLE_SECONDS, then reads each one's RSS."""
    await asyncio.sleep(IDLE_SECONDS)
    return [IdleMemory(name, started_by, psutil.Process(pid).memory_info().rss / MIB) for name, pid in pids.items()]


def report(measured: list[IdleMemory]) -> str:
    """One line per process."""
    lines = [f"idle memory ({IDLE_SECONDS:g} s after SERVING, no calls)"]
    lines += [f"  {m.process:16} {m.rss_mib:7.1f} MiB RSS  (started by the {m.started_by})" for m in measured]
    return "\n".join(lines)
