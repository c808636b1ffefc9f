"""The database handle: one async engine, transactions, dialect quirks in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Select, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolResetState

from otahub.store import sqlite_inline
from otahub.store.prepared import DirectReads, DirectReadsHolder, PreparedIn, PreparedRead


def async_url(url: str) -> str:
    """Give a plain database URL the async driver otahub uses for it."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        u = u.set(drivername="postgresql+asyncpg")
    elif u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername=f"sqlite+{sqlite_inline.DRIVER}")
    return u.render_as_string(hide_password=False)


class Database:
    """Owns the engine. `transaction()` writes, `read()` only reads.

    On SQLite (called in place on the loop's thread, see `otahub.store.sqlite_inline`)
    a writing transaction first queues on the process's write lock, then starts with
    BEGIN IMMEDIATE, so it holds SQLite's lock from its first statement instead of
    failing to upgrade it halfway through.
    """

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 32) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgres = self.url.startswith("postgresql")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # The pool's rollback on return is ours to do (see `_configure_sqlite`).
            kwargs["pool_reset_on_return"] = None
        if self.is_postgres:
            # Connections beyond pool_size are opened and closed per checkout (a
            # PostgreSQL backend forked each time); size the pool for the load.
            kwargs.update(pool_size=pool_size, max_overflow=8, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine, sqlite_inline.WriteLock())
        self._direct = DirectReadsHolder(self.url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            if self.is_postgres:
                # Under READ COMMITTED each statement takes its own snapshot inside a
                # transaction or not, so BEGIN and COMMIT around a read only add two
                # round trips to every device check-in.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
                return
            await conn.execution_options(otahub_read_only=True)
            async with conn.begin():
                yield conn

    def prepare(self, statement: Select[Any]) -> PreparedRead:
        """A hot-path read, compiled once (see `otahub.store.prepared`)."""
        return PreparedRead(self, statement)

    def prepare_in(self, build: Callable[[list[Any]], Select[Any]], name: str = "in") -> PreparedIn:
        """A hot-path read over a list of values (see `otahub.store.prepared`)."""
        return PreparedIn(self, build, name)

    async def direct_reads(self) -> DirectReads | None:
        """The driver-level connections `PreparedRead`s run on (opened on first use),
        or None where they go through SQLAlchemy."""
        return await self._direct.get()

    async def dispose(self) -> None:
        await self._direct.close()
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine, write_lock: sqlite_inline.WriteLock) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take BEGIN into our own hands (see the "begin" listener).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(sqlite_inline.BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(sync_engine.pool, "reset")
    def _on_reset(dbapi_conn: Any, _record: Any, state: PoolResetState) -> None:
        # A connection back in the pool is rolled back only when a transaction is
        # still open on it (after the usual COMMIT there is nothing to undo).
        if sqlite_inline.in_transaction(dbapi_conn):
            dbapi_conn.rollback()
        write_lock.release(_dbapi(dbapi_conn))

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("otahub_read_only", False):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = _dbapi(conn.connection)
        write_lock.acquire(dbapi_conn)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            write_lock.release(dbapi_conn)
            raise

    # The COMMIT or ROLLBACK runs right after these, in the same synchronous step:
    # the next writer, woken by the release, runs only after it.
    @event.listens_for(sync_engine, "commit")
    def _on_commit(conn: Connection) -> None:
        write_lock.release(_dbapi(conn.connection))

    @event.listens_for(sync_engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        write_lock.release(_dbapi(conn.connection))


def _dbapi(conn: Any) -> Any:
    """The DBAPI connection (`sqlite_inline.AdaptedConnection`) behind a pooled
    connection or its proxy: what the write lock is held for."""
    return getattr(conn, "dbapi_connection", conn)
