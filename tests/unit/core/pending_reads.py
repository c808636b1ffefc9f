"""Counts the reads of devices' pending lists (the prepared reads of the check-in)."""

from __future__ import annotations

from typing import Any

import pytest

from otahub.store.prepared import PreparedRead

# Both pending-list statements (by device ids, by thing name) and no other prepared
# read select released executions.
_PENDING_LIST = "released_at IS NOT NULL"


class PendingReads:
    def __init__(self) -> None:
        self.count = 0

    def take(self) -> int:
        """The reads since the last take."""
        count, self.count = self.count, 0
        return count


def count_pending_reads(monkeypatch: pytest.MonkeyPatch) -> PendingReads:
    reads = PendingReads()
    run = PreparedRead.all

    async def counted(self: PreparedRead, **params: Any) -> Any:
        if _PENDING_LIST in self.sql:
            reads.count += 1
        return await run(self, **params)

    monkeypatch.setattr(PreparedRead, "all", counted)
    return reads
