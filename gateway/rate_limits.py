"""Rate limits per caller: a token bucket each, refilled continuously on the gateway's clock.

Refusing is cheap and happens before any backend is reached; the caller learns from `RetryInfo`
when the next call can pass. Buckets of callers gone quiet are forgotten (a forgotten bucket would
be full again anyway), so memory stays bounded however many callers come and go.
"""

from dataclasses import dataclass

from cachetools import TTLCache

from chassis.caller import Caller
from chassis.clock import Clock
from gateway.settings import RateLimit

_BUCKETS_KEPT = 200_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimits:
    """One bucket per employee, per customer and per retail partner (all its shops together)."""

    def __init__(self, clock: Clock, *, employee: RateLimit, customer: RateLimit, retailer: RateLimit) -> None:
        self._clock = clock
        self._limits = {"employee": employee, "customer": customer, "retailer": retailer}
        # A bucket idle for longer than its refill time is full again: it can be forgotten by then.
        longest_refill = max(limit.burst / limit.per_second for limit in self._limits.values())
        self._buckets: TTLCache[tuple[str, str], _Bucket] = TTLCache(
            _BUCKETS_KEPT, max(longest_refill, 1.0), timer=lambda: clock.now().timestamp()
        )

    def wait_seconds(self, caller: Caller) -> float:
        """Takes one token from the caller's bucket: 0 when the call may pass, else how long until
        a token is there again (nothing is taken then)."""
        limit = self._limits.get(caller.kind)
        if limit is None:
            return 0.0
        key = (caller.kind, caller.tenant or caller.subject)
        now = self._clock.now().timestamp()
        bucket = self._buckets.get(key) or _Bucket(tokens=float(limit.burst), updated=now)
        bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.updated) * limit.per_second)
        bucket.updated = now
        self._buckets[key] = bucket
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / limit.per_second
