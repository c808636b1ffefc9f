"""The generic token-bucket limiter, on a fake clock."""

from __future__ import annotations

import pytest

from otahub.core.ratelimit import Limit, RateLimiter
from otahub.domain.clock import FakeClock


def test_burst_then_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = Limit(10)
    assert all(limiter.allow("k", limit) for _ in range(10))
    decision = limiter.acquire("k", limit)
    assert not decision.allowed and decision.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert limiter.allow("k", limit)
    assert not limiter.allow("k", limit)
    clock.advance(1)
    assert sum(limiter.allow("k", limit) for _ in range(20)) == 10


def test_keys_are_independent() -> None:
    limiter = RateLimiter(FakeClock())
    limit = Limit(1)
    assert limiter.allow(("acct", "A"), limit)
    assert not limiter.allow(("acct", "A"), limit)
    assert limiter.allow(("acct", "B"), limit)
    assert limiter.allow(("other", "A"), limit)


def test_sustained_rate_matches_the_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = Limit(5)
    allowed = 0
    for _ in range(1000):  # 10 seconds in 10 ms steps, asking every step
        allowed += limiter.allow("k", limit)
        clock.advance(0.01)
    assert 5 * 10 <= allowed <= 5 * 10 + 5


def test_explicit_burst_and_fractional_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = Limit(0.5, burst=2)
    assert limiter.allow("k", limit) and limiter.allow("k", limit)
    assert not limiter.allow("k", limit)
    clock.advance(2)
    assert limiter.allow("k", limit)


def test_clock_going_back_does_not_mint_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    limit = Limit(1)
    assert limiter.allow("k", limit)
    clock.advance(-5)
    assert not limiter.allow("k", limit)


def test_bounded_keys() -> None:
    limiter = RateLimiter(FakeClock(), max_keys=3)
    for key in range(10):
        limiter.allow(key, Limit(1))
    assert len(limiter) == 3


def test_bad_limits() -> None:
    with pytest.raises(ValueError):
        Limit(0)
    with pytest.raises(ValueError):
        Limit(1, burst=0.5)
