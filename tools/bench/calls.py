"""Keeping calls in flight and summarising their latencies: the client every request/response phase uses.

The service phases and the echo baselines are driven by this same code over the same kind of channel,
so that a ratio between them compares the servers, not two clients.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

CALL_TIMEOUT_SECONDS = 30.0
"""Deadline of every measured call."""


@dataclass(frozen=True)
class PhaseLimits:
    """Where a phase stops: after this many calls or this long, whichever comes first."""

    max_requests: int
    """Most calls sent."""
    max_seconds: float
    """Longest it runs."""


CONCURRENCIES = (1, 8, 32, 64)
"""Calls in flight in the phases of a full run."""
FULL_LIMITS = PhaseLimits(max_requests=3_000, max_seconds=6.0)
"""Where a phase of a full run stops."""
QUICK_LIMITS = PhaseLimits(max_requests=300, max_seconds=1.0)
"""Where a phase of a smoke run (`--quick`) stops."""


@dataclass(frozen=True)
class Driven:
    """What keeping calls in flight produced."""

    seconds: float
    latencies_ms: list[float]
    """One per call that succeeded."""
    errors: Counter[str]
    """Failed calls by gRPC status code."""

    @property
    def p50_ms(self) -> float:
        """Median latency of the calls that succeeded."""
        return percentile(self.latencies_ms, 0.5)

    @property
    def p99_ms(self) -> float:
        """99th percentile latency of the calls that succeeded."""
        return percentile(self.latencies_ms, 0.99)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def drive(make_call: Callable[[], Awaitable[object]], *, concurrency: int, limits: PhaseLimits) -> Driven:
    """Keeps `concurrency` calls in flight until `limits.max_requests` are sent or `limits.max_seconds` pass."""
    sent = 0
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    deadline = started + limits.max_seconds

    async def worker() -> None:
        nonlocal sent
        while sent < limits.max_requests and time.perf_counter() < deadline:
            sent += 1
            began = time.perf_counter()
            try:
                await make_call()
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
                continue
            latencies.append((time.perf_counter() - began) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Driven(time.perf_counter() - started, latencies, errors)
