"""Remembers used `SignatureNonce` values until their request could no longer be valid."""

from __future__ import annotations

import heapq
import threading
from datetime import datetime
from typing import Protocol

from otahub.domain.clock import Clock


class NonceStore(Protocol):
    async def claim(self, access_key_id: str, nonce: str, expires_at: datetime) -> bool:
        """Record the nonce; False if it was already recorded and has not expired.

        Must be atomic: of two concurrent claims of one nonce, one wins."""
        ...


class MemoryNonceStore:
    """Per-process store, bounded: when full, the entries closest to expiry are dropped
    first, which reopens a replay window only for those (documented trade-off)."""

    def __init__(self, clock: Clock, *, max_entries: int = 200_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max = max_entries
        self._expiry: dict[tuple[str, str], datetime] = {}
        self._heap: list[tuple[datetime, tuple[str, str]]] = []
        self._lock = threading.Lock()

    async def claim(self, access_key_id: str, nonce: str, expires_at: datetime) -> bool:
        return self.claim_now(access_key_id, nonce, expires_at)

    def claim_now(self, access_key_id: str, nonce: str, expires_at: datetime) -> bool:
        now = self._clock.now()
        key = (access_key_id, nonce)
        with self._lock:
            self._purge(now)
            current = self._expiry.get(key)
            if current is not None and current > now:
                return False
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            while len(self._expiry) > self._max:
                self._pop_one()
            return True

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: datetime) -> None:
        while self._heap and self._heap[0][0] <= now:
            self._pop_one()

    def _pop_one(self) -> None:
        at, key = heapq.heappop(self._heap)
        # A key re-claimed after expiry has a newer heap entry; only drop the live one.
        if self._expiry.get(key) == at:
            del self._expiry[key]
