"""SQLite for the asyncio engine, called in place on the event loop's thread.

SQLite is a library in this process, not a server: a statement on an indexed
table takes microseconds. aiosqlite runs each connection on a thread of its own
and hands every call (cursor, execute, fetch, close, commit) across with a queue
and a wake-up of the event loop, so under load each call waits for a whole turn
of a busy loop: a five-statement device report took ~9 ms, nearly all of it
waiting. Here the sqlite3 module is called directly from the greenlet SQLAlchemy's
asyncio layer already runs its engine in.

What a thread gave for free must be kept by hand:

- A writer must never wait for SQLite's lock on the loop's thread, since the
  connection holding it could only move on when the loop does. Writers in this
  process therefore queue on an `asyncio.Lock` before BEGIN IMMEDIATE (see
  `WriteLock`), and take SQLite's lock at once. Another process holding the
  database's lock (an `otahub` command run beside the server) still makes the
  server wait, up to the busy timeout.
- A long statement holds the loop for as long as it runs. otahub's statements are
  indexed and set-based; the longest on SQLite is a rollout's release, written
  10,000 executions per transaction (~20 ms each, `otahub.core.engine`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import pool
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection, AsyncAdapt_dbapi_module
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.util.concurrency import await_

DRIVER = "otahub"  # URLs name it sqlite+otahub://
BUSY_TIMEOUT_S = 30.0  # as PRAGMA busy_timeout, for writers queued in this process


class _Cursor:
    """A sqlite3 cursor with the awaitable methods SQLAlchemy's asyncio adapter
    calls. Each returns at once: awaiting it switches greenlets, the loop does not
    turn."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _Cursor:
        return self

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, operation: str, parameters: Any = ()) -> None:
        self._cursor.execute(operation, parameters)

    async def executemany(self, operation: str, parameters: Any) -> None:
        self._cursor.executemany(operation, parameters)

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> Sequence[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _Connection:
    """A sqlite3 connection behind the same awaitable face."""

    __slots__ = ("raw",)

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def cursor(self) -> _Cursor:
        return _Cursor(self.raw.cursor())

    async def commit(self) -> None:
        self.raw.commit()

    async def rollback(self) -> None:
        self.raw.rollback()

    async def close(self) -> None:
        self.raw.close()


class AdaptedConnection(AsyncAdapt_dbapi_connection):
    __slots__ = ()
    _connection: _Connection  # type: ignore[assignment]

    @property
    def isolation_level(self) -> str | None:
        return self._connection.raw.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._connection.raw.isolation_level = value

    @property
    def in_transaction(self) -> bool:
        return self._connection.raw.in_transaction

    def create_function(self, *args: Any, **kw: Any) -> None:
        self._connection.raw.create_function(*args, **kw)


class _Dbapi(AsyncAdapt_dbapi_module):
    """sqlite3 as SQLAlchemy's asyncio layer sees a DBAPI: its errors and types,
    and `connect` giving an adapted connection."""

    def __init__(self) -> None:
        super().__init__(sqlite3, dbapi_module=sqlite3)
        self.paramstyle = "qmark"
        for name in (
            "DatabaseError",
            "Error",
            "IntegrityError",
            "NotSupportedError",
            "OperationalError",
            "ProgrammingError",
            "InterfaceError",
            "sqlite_version",
            "sqlite_version_info",
            "PARSE_COLNAMES",
            "PARSE_DECLTYPES",
            "Binary",
        ):
            setattr(self, name, getattr(sqlite3, name))

    def connect(self, *args: Any, **kwargs: Any) -> AdaptedConnection:
        # Pooled connections are used on the loop's thread only, but the garbage
        # collector may close one from another.
        kwargs["check_same_thread"] = False
        raw = sqlite3.connect(*args, **kwargs)
        return AdaptedConnection(self, _Connection(raw))  # type: ignore[arg-type]


class SQLiteDialect_otahub(SQLiteDialect_pysqlite):
    driver = DRIVER
    is_async = True
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _Dbapi()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def get_driver_connection(self, connection: Any) -> Any:
        return connection._connection.raw


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_otahub")


class WriteLock:
    """One writing transaction at a time in this process, queued on the loop.

    `acquire` is called from SQLAlchemy's synchronous code (its "begin" event),
    which runs in a greenlet of the awaiting task, so it can wait with `await_`.
    The lock is held for a DBAPI connection and released by whichever of commit,
    rollback or the pool's reset ends that connection's transaction first."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._holder: Any = None
        self._task: asyncio.Task[Any] | None = None

    def acquire(self, dbapi_conn: Any) -> None:
        task = asyncio.current_task()
        if self._lock.locked() and task is not None and task is self._task:
            # Waiting would never end: the holder is this very task.
            raise RuntimeError("a write transaction was begun inside another on SQLite")
        if not self._lock.locked():
            await_(self._lock.acquire())  # returns at once
        else:
            try:
                await_(asyncio.wait_for(self._lock.acquire(), BUSY_TIMEOUT_S))
            except TimeoutError:
                # What SQLite's busy timeout said when writers waited on its lock;
                # a holder waiting on a task that waits here ends this way too.
                raise sqlite3.OperationalError("database is locked") from None
        self._holder, self._task = dbapi_conn, task

    def release(self, dbapi_conn: Any) -> None:
        if self._holder is not None and self._holder is dbapi_conn:
            self._holder, self._task = None, None
            self._lock.release()


def in_transaction(dbapi_conn: Any) -> bool:
    """Whether SQLite has a transaction open on this connection. True when unknown."""
    return bool(getattr(dbapi_conn, "in_transaction", True))
