"""SQLite connections go back to the pool rolled back only when a transaction is
still open on them: the usual commit leaves nothing to roll back, and skipping the
rollback saves a trip to the connection's thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_connection

from otahub.store.db import Database


async def test_only_an_open_transaction_is_rolled_back_on_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'pool.db'}")
    rollbacks = [0]
    rollback = AsyncAdapt_aiosqlite_connection.rollback

    def counted(self: Any) -> None:
        rollbacks[0] += 1
        rollback(self)

    monkeypatch.setattr(AsyncAdapt_aiosqlite_connection, "rollback", counted)
    try:
        async with db.transaction() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        rollbacks[0] = 0  # (SQLAlchemy rolls back once after its first connect)
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t VALUES (0)"))
            await conn.execute(text("DELETE FROM t"))
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
        assert rollbacks[0] == 0  # committed: nothing left to roll back

        # A write left uncommitted is rolled back when its connection goes back.
        async with db.engine.connect() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
        assert rollbacks[0] == 1
        async with db.transaction() as conn:  # the write lock is free again
            await conn.execute(text("INSERT INTO t VALUES (2)"))
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [2]
    finally:
        await db.dispose()
