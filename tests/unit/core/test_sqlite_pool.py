"""SQLite runs in place on the event loop's thread (`otahub.store.sqlite_inline`):
writers queue on the process's write lock instead of on SQLite's, which the loop's
thread must never wait for; connections go back to the pool rolled back only when
a transaction is still open on them."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from otahub.store import sqlite_inline
from otahub.store.db import Database
from otahub.store.sqlite_inline import AdaptedConnection


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    db = Database(f"sqlite:///{tmp_path / 'pool.db'}")
    async with db.transaction() as conn:
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield db
    await db.dispose()


async def test_only_an_open_transaction_is_rolled_back_on_return(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollbacks = [0]
    rollback = AdaptedConnection.rollback

    def counted(self: Any) -> None:
        rollbacks[0] += 1
        rollback(self)

    monkeypatch.setattr(AdaptedConnection, "rollback", counted)
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


async def test_writers_take_turns_while_readers_and_the_loop_go_on(db: Database) -> None:
    order: list[str] = []
    first_in = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            order.append("first wrote")
            first_in.set()
            await release_first.wait()  # holds SQLite's write lock across an await

    async def second() -> None:
        await first_in.wait()
        async with db.transaction() as conn:
            order.append("second began")
            rows = (await conn.execute(text("SELECT x FROM t"))).scalars().all()
            assert rows == [1]  # it began after the first committed
            await conn.execute(text("INSERT INTO t VALUES (2)"))

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_in.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # the loop turns: nobody is blocked on SQLite's lock
    async with db.read() as conn:  # a reader is not held up by the writer
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    assert order == ["first wrote"]
    release_first.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["first wrote", "second began"]


async def test_a_write_begun_inside_another_is_refused_not_deadlocked(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(RuntimeError, match="inside another"):
            async with db.transaction() as inner:
                await inner.execute(text("INSERT INTO t VALUES (2)"))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [1]


async def test_a_failed_write_frees_the_lock(db: Database) -> None:
    with pytest.raises(ValueError):
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            raise ValueError("boom")
    async with asyncio.timeout(5), db.transaction() as conn:
        await conn.execute(text("INSERT INTO t VALUES (2)"))
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT x FROM t"))).scalars().all() == [2]


async def test_a_writer_that_waits_too_long_is_told_the_database_is_locked(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that waits on a task waiting for the lock would wait forever; the
    waiter gives up after the busy timeout, as SQLite's own lock did."""
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT_S", 0.2)

    async def second_writer() -> None:
        async with db.transaction() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))

    async with db.transaction() as conn:
        await conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await asyncio.wait_for(asyncio.create_task(second_writer()), 5)
    await second_writer()  # the lock was freed by the first commit
    async with db.read() as conn:
        assert (await conn.execute(text("SELECT x FROM t ORDER BY x"))).scalars().all() == [1, 2]
