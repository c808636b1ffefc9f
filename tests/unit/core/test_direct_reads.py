"""The PostgreSQL connections of the hot reads: never more than their number, a
connection back in service after an error the server reports, a broken or
cancelled one replaced, waiters served or released."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from otahub.store.db import Database
from otahub.store.prepared import PostgresReads


@pytest.fixture
async def reads(pg_url: str) -> AsyncIterator[PostgresReads]:
    found = PostgresReads(pg_url, size=2)
    yield found
    await found.close()


async def pid(reads: PostgresReads) -> int:
    rows = await reads.fetch("SELECT pg_backend_pid()", [])
    return int(rows[0][0])


async def test_no_more_connections_than_its_size(reads: PostgresReads) -> None:
    rows = await asyncio.gather(
        *(reads.fetch("SELECT $1::int, pg_backend_pid()", [i]) for i in range(40))
    )
    assert [r[0][0] for r in rows] == list(range(40))
    assert len({r[0][1] for r in rows}) <= 2
    assert reads._count <= 2 and not reads._waiters


async def test_a_server_error_keeps_the_connection(reads: PostgresReads) -> None:
    first = await pid(reads)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await reads.fetch("SELECT 1 / $1::int", [0])
    assert await pid(reads) == first


async def test_killed_connections_are_replaced_without_failing_a_read(
    reads: PostgresReads, pg_url: str
) -> None:
    """A server restart or a network cut: the next reads run on new connections."""
    held = await asyncio.gather(*(reads.fetch("SELECT pg_backend_pid()", []) for _ in range(2)))
    before = {int(r[0][0]) for r in held}
    admin = await asyncpg.connect(pg_url)
    try:
        for p in before:
            await admin.execute("SELECT pg_terminate_backend($1)", p)
    finally:
        await admin.close()
    after = [await pid(reads) for _ in range(4)]
    assert not set(after) & before
    assert reads._count <= 2


class GoneConnection:
    """A connection whose server went away without the client noticing yet."""

    terminated = False

    def is_closed(self) -> bool:
        return self.terminated

    async def fetch(self, *args: object) -> None:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

    def terminate(self) -> None:
        self.terminated = True


async def test_a_read_on_a_lost_connection_runs_again_on_a_new_one(reads: PostgresReads) -> None:
    gone = [GoneConnection(), GoneConnection()]
    reads._idle.extend(gone)
    reads._count = 2
    assert await reads.fetch("SELECT $1::int", [7]) == [(7,)]
    assert all(c.terminated for c in gone)  # the other idle one shared its fate
    assert reads._count == 1


async def test_a_read_lost_twice_fails(reads: PostgresReads, pg_url: str) -> None:
    reads.dsn = pg_url.replace("5432", "1")  # nothing listens there
    reads._idle.append(GoneConnection())
    reads._count = 1
    with pytest.raises(OSError):
        await reads.fetch("SELECT 1", [])
    assert reads._count == 0


async def test_cancelled_reads_and_waiters_give_their_place_back(
    reads: PostgresReads, pg_url: str
) -> None:
    admin = await asyncpg.connect(pg_url)
    await admin.execute("SELECT pg_advisory_lock(4242)")
    try:
        # Both connections block on the lock; a third read waits for a connection.
        blocked = [
            asyncio.create_task(reads.fetch("SELECT pg_advisory_lock(4242)", [])) for _ in range(2)
        ]
        waiting = asyncio.create_task(reads.fetch("SELECT 1", []))
        while True:
            n = await admin.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if n == 2 and reads._waiters:
                break
            await asyncio.sleep(0)  # let the reads reach the server (a yield, no delay)
        waiting.cancel()
        for task in blocked:
            task.cancel()
        for task in [waiting, *blocked]:
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        await admin.execute("SELECT pg_advisory_unlock_all()")
        await admin.close()
    assert reads._count == 0  # both cancelled mid-read: closed, not reused
    assert [await pid(reads) > 0 for _ in range(3)] == [True] * 3
    assert reads._count == 1


async def test_a_closed_database_reopens_its_reads(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        first = await db.direct_reads()
        assert isinstance(first, PostgresReads)
        await db.dispose()
        again = await db.direct_reads()
        assert isinstance(again, PostgresReads) and again is not first
        assert await again.fetch("SELECT 1", []) == [(1,)]
    finally:
        await db.dispose()
