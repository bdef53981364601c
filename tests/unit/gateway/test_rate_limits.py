"""Rate limits: a token bucket per caller (per partner for all its shops together), refilled on the
clock; the refusal says how long until the next call can pass."""

import datetime

import pytest

from chassis.caller import Caller
from chassis.clock import ManualClock
from gateway.rate_limits import RateLimits
from gateway.settings import RateLimit

ALICE = Caller(subject="alice", kind="employee", roles=("agent",))
BOB = Caller(subject="bob", kind="employee", roles=("agent",))
SHOP_1 = Caller(subject="retailers/texnomart", kind="retailer", tenant="retailers/texnomart")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC))


def limits(clock: ManualClock) -> RateLimits:
    return RateLimits(
        clock,
        employee=RateLimit(per_second=2.0, burst=3),
        customer=RateLimit(per_second=1.0, burst=1),
        retailer=RateLimit(per_second=10.0, burst=5),
    )


def test_a_burst_passes_then_the_next_call_waits_for_a_token(clock: ManualClock) -> None:
    buckets = limits(clock)
    assert [buckets.wait_seconds(ALICE) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.wait_seconds(ALICE) == pytest.approx(0.5)


def test_the_bucket_refills_with_time(clock: ManualClock) -> None:
    buckets = limits(clock)
    for _ in range(3):
        buckets.wait_seconds(ALICE)
    clock.advance(datetime.timedelta(seconds=0.5))
    assert buckets.wait_seconds(ALICE) == 0.0
    assert buckets.wait_seconds(ALICE) > 0


def test_one_callers_burst_does_not_limit_another(clock: ManualClock) -> None:
    buckets = limits(clock)
    for _ in range(4):
        buckets.wait_seconds(ALICE)
    assert buckets.wait_seconds(BOB) == 0.0


def test_a_refused_call_takes_no_token(clock: ManualClock) -> None:
    buckets = limits(clock)
    for _ in range(3):
        buckets.wait_seconds(ALICE)
    for _ in range(10):
        assert buckets.wait_seconds(ALICE) == pytest.approx(0.5)
    clock.advance(datetime.timedelta(seconds=0.5))
    assert buckets.wait_seconds(ALICE) == 0.0


def test_a_partners_shops_share_one_bucket(clock: ManualClock) -> None:
    buckets = limits(clock)
    other_counter = Caller(subject="retailers/texnomart", kind="retailer", tenant="retailers/texnomart")
    for _ in range(5):
        buckets.wait_seconds(SHOP_1)
    assert buckets.wait_seconds(other_counter) == pytest.approx(0.1)


def test_services_inside_the_cluster_are_not_limited(clock: ManualClock) -> None:
    buckets = limits(clock)
    job = Caller(subject="gateway", kind="service")
    assert all(buckets.wait_seconds(job) == 0.0 for _ in range(100))
