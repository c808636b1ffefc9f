"""A token-bucket rate limiter keyed by any hashable value, on an injected clock.

Each key has a bucket that holds up to `burst` tokens and refills at `rate` tokens
per second; a request takes one token or is refused. The limit is passed with each
call, so one limiter serves keys with different limits (callers look the limit up).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

from otahub.domain.clock import Clock


@dataclass(frozen=True)
class Limit:
    """`rate` requests per second on average, at most `burst` at once (default: `rate`)."""

    rate: float
    burst: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be at least 1")

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else max(self.rate, 1.0)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float
    """Seconds until one token is available (0 when allowed)."""


@dataclass
class _Bucket:
    tokens: float
    at: datetime


class RateLimiter:
    """Thread-safe; keeps at most `max_keys` buckets (the least recently used go first,
    and a dropped bucket comes back full, which only ever errs on the lenient side)."""

    def __init__(self, clock: Clock, *, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: Hashable, limit: Limit, cost: float = 1.0) -> Decision:
        now = self._clock.now()
        capacity = limit.capacity
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(tokens=capacity, at=now)
                self._buckets[key] = bucket
                self._evict()
            else:
                self._buckets.move_to_end(key)
                elapsed = max((now - bucket.at).total_seconds(), 0.0)
                bucket.tokens = min(capacity, bucket.tokens + elapsed * limit.rate)
                bucket.at = max(now, bucket.at)
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return Decision(True, 0.0)
            missing = cost - bucket.tokens
            return Decision(False, math.ceil(missing / limit.rate * 1000) / 1000)

    def allow(self, key: Hashable, limit: Limit) -> bool:
        return self.acquire(key, limit).allowed

    def reset(self, key: Hashable | None = None) -> None:
        with self._lock:
            if key is None:
                self._buckets.clear()
            else:
                self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self) -> None:
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
