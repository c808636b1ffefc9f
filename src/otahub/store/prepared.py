"""Reads on a hot path: a select built and compiled once, run on the driver's own
connection.

Through SQLAlchemy every execution constructs the statement again, computes its
cache key, checks a pooled connection out and back in (with BEGIN, COMMIT and a
reset on SQLite) and processes the rows: on the device check-in that costs several
times the query itself. A `PreparedRead` pays for that once:

- on PostgreSQL it runs on a few asyncpg connections owned by the `Database`,
  where asyncpg prepares the statement once per connection and keeps it;
- on a SQLite file it runs on one read-only connection of its own, in a single trip
  to that connection's thread (WAL: readers see every commit and block no writer);
- anywhere else (an in-memory SQLite) it goes through SQLAlchemy as usual.

Values come back converted by the very result processors SQLAlchemy applies to the
same columns on the same dialect, so a row is what `conn.execute(statement)` gives.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, bindparam
from sqlalchemy.engine import Dialect, make_url

from otahub.store.sqlite_inline import BUSY_TIMEOUT_S

if TYPE_CHECKING:
    from otahub.store.db import Database

Row = tuple[Any, ...]
Processor = Callable[[Any], Any]

DIRECT_CONNECTIONS = 8  # PostgreSQL connections of the hot reads, beside SQLAlchemy's pool


class PreparedRead:
    """One select with named bind parameters (`bindparam("name", None)`, each one a
    call must give), compiled once for the database's dialect. `keys` name the
    columns of every row."""

    def __init__(self, db: Database, statement: Select[Any]) -> None:
        self.db = db
        self.statement = statement
        self.keys: tuple[str, ...] = tuple(statement.selected_columns.keys())
        dialect: Dialect = db.engine.dialect
        compiled = statement.compile(dialect=dialect)
        if compiled.post_compile_params:
            # An expanding IN (a list bound at execution) is rendered per call.
            raise ValueError("a prepared read takes no expanding IN; bind each value")
        self.sql = compiled.string
        names = compiled.positiontup or []
        # Values the statement carries itself (literals, OFFSET 0); the rest are the
        # caller's to give.
        self._defaults = {n: v for n in names if (v := compiled.params[n]) is not None}
        self._params: list[tuple[str, Processor | None]] = [
            (n, compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in names
        ]
        processors = [
            c.type.dialect_impl(dialect).result_processor(dialect, None)
            for c in statement.selected_columns
        ]
        self._processed = [(i, p) for i, p in enumerate(processors) if p is not None]

    def _args(self, params: Mapping[str, Any]) -> list[Any]:
        args = []
        for name, process in self._params:
            if name in params:
                value = params[name]
            elif name in self._defaults:
                value = self._defaults[name]
            else:
                raise TypeError(f"the prepared read needs a value for {name!r}")
            args.append(process(value) if process is not None else value)
        return args

    def _row(self, raw: Sequence[Any]) -> Row:
        if not self._processed:
            return tuple(raw)
        row = list(raw)
        for i, process in self._processed:
            row[i] = process(row[i])
        return tuple(row)

    async def all(self, **params: Any) -> list[Row]:
        direct = await self.db.direct_reads()
        if direct is None:
            self._args(params)  # the same checks of the parameters on every path
            async with self.db.read() as conn:
                return [tuple(r) for r in await conn.execute(self.statement, params)]
        raw = await direct.fetch(self.sql, self._args(params))
        return [self._row(r) for r in raw]


IN_SIZES = (1, 8, 64, 512)  # the lists a PreparedIn compiles; longer ones go in chunks


class PreparedIn:
    """A `PreparedRead` whose statement takes a list of values for one IN (...):
    `build(params)` makes the select from the bind parameters of the list's places.
    One statement is compiled per size in `IN_SIZES`, on first use; a list is padded
    to the next size with its last value (an IN with a value twice is the same IN),
    a longer one runs in chunks of the largest size. Rows of all chunks together,
    with `keys` naming their columns."""

    def __init__(
        self, db: Database, build: Callable[[list[Any]], Select[Any]], name: str = "in"
    ) -> None:
        self.db = db
        self._build = build
        self._name = name
        self._by_size: dict[int, PreparedRead] = {}
        self.keys: tuple[str, ...] = self._read(IN_SIZES[0]).keys

    def _read(self, size: int) -> PreparedRead:
        read = self._by_size.get(size)
        if read is None:
            places: list[Any] = [bindparam(f"{self._name}_{i}", None) for i in range(size)]
            read = self._by_size[size] = PreparedRead(self.db, self._build(places))
        return read

    async def all(self, values: Sequence[Any], **params: Any) -> list[Row]:
        rows: list[Row] = []
        largest = IN_SIZES[-1]
        for start in range(0, len(values), largest):
            chunk = list(values[start : start + largest])
            size = next(n for n in IN_SIZES if n >= len(chunk))
            chunk += [chunk[-1]] * (size - len(chunk))
            args = {f"{self._name}_{i}": v for i, v in enumerate(chunk)}
            rows += await self._read(size).all(**args, **params)
        return rows


class DirectReads:
    """Where prepared reads run without SQLAlchemy: one kind per database."""

    async def fetch(self, sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PostgresReads(DirectReads):
    """Up to `size` asyncpg connections, opened as the load asks for them, each
    running one read at a time.

    Not asyncpg's own pool: its checkout and release (a proxy object, a task to
    shield the release, a reset of four statements and one more round trip) cost
    more CPU than the read itself. These connections only ever run prepared SELECTs
    outside a transaction, so there is no session state to reset; one whose read
    failed for any reason but an error the server reported is closed rather than
    reused, and a read whose connection was lost runs again on a new one. JSON and
    JSONB decode as SQLAlchemy's asyncpg dialect sets them up."""

    def __init__(self, dsn: str, size: int = DIRECT_CONNECTIONS) -> None:
        import asyncpg

        self._server_error = asyncpg.PostgresError
        self._connection_gone = asyncpg.ConnectionDoesNotExistError
        self.dsn = dsn
        self.size = size
        self._idle: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._count = 0  # open or opening
        self._closed = False

    async def fetch(self, sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        retried = False
        while True:
            conn = self._take_idle() or await self._checkout()
            try:
                rows = await conn.fetch(sql, *args)
            except asyncio.CancelledError:
                self._discard(conn)  # cancelled mid-read: in no state to reuse
                raise
            except BaseException as exc:
                if self._still_usable(conn, exc):
                    self._checkin(conn)  # the server refused the read; the connection is fine
                    raise
                self._discard(conn)
                if retried or not self._lost(conn, exc):
                    raise
                # The connection was gone (a restart, a network cut): so are the others
                # opened to the same server. A read is safe to run again, once, on a new
                # connection, rather than fail a request halfway through its work.
                self._discard_idle()
                retried = True
                continue
            self._checkin(conn)
            return rows  # type: ignore[no-any-return]

    def _take_idle(self) -> Any:
        """An idle connection still open, or None (one found closed is let go)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._discard(conn)
        return None

    def _discard_idle(self) -> None:
        while self._idle:
            self._discard(self._idle.pop())

    def _still_usable(self, conn: Any, exc: BaseException) -> bool:
        """Whether a read's failure left its connection fit for the next: an error the
        server reported about the statement, not about the connection (class 08) or
        the server going away (57: shutdown, termination)."""
        if not isinstance(exc, self._server_error) or conn.is_closed():
            return False
        return not _sqlstate(exc).startswith(("08", "57"))

    def _lost(self, conn: Any, exc: BaseException) -> bool:
        """Whether a read failed because its connection is gone."""
        return (
            conn.is_closed()
            or isinstance(exc, OSError | self._connection_gone)
            or _sqlstate(exc).startswith(("08", "57"))
        )

    async def _checkout(self) -> Any:
        if self._closed:
            raise RuntimeError("the database's direct reads are closed")
        if self._count < self.size:
            self._count += 1
            return await self._open_counted()
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                if waiter.result() is None:
                    self._free()
                else:
                    self._checkin(waiter.result())
            raise
        if conn is None:  # a discarded connection's place, ours to open
            return await self._open_counted()
        return conn

    async def _open_counted(self) -> Any:
        """A new connection in a place already counted."""
        import asyncpg

        try:
            conn = await asyncpg.connect(self.dsn)
            for name in ("json", "jsonb"):
                # SQLAlchemy's JSON bind processor hands over text already.
                await conn.set_type_codec(
                    name, encoder=str, decoder=json.loads, schema="pg_catalog"
                )
        except BaseException:
            self._free()
            raise
        return conn

    def _checkin(self, conn: Any) -> None:
        if self._closed:
            self._discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _discard(self, conn: Any) -> None:
        conn.terminate()
        self._free()

    def _free(self) -> None:
        """One place fewer is taken: a waiter, if any, opens a connection in it (so
        waiters never outlive every connection)."""
        self._count -= 1
        while self._waiters and not self._closed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._count += 1
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            await self._idle.pop().close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the database's direct reads are closed"))
        self._waiters.clear()


def _sqlstate(exc: BaseException) -> str:
    return str(getattr(exc, "sqlstate", "") or "")


class SqliteReads(DirectReads):
    """One read-only connection to the database file, called in place on the loop's
    thread (see `otahub.store.sqlite_inline`); each read is its own snapshot."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, path: str) -> SqliteReads:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA query_only=ON")
        return cls(conn)

    async def fetch(self, sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return self.conn.execute(sql, args).fetchall()

    async def close(self) -> None:
        self.conn.close()


async def open_direct_reads(url: str) -> DirectReads | None:
    """The direct reads for a database URL (as `Database.url` holds it), or None
    where prepared reads go through SQLAlchemy."""
    u = make_url(url)
    if u.drivername.startswith("postgresql"):
        dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresReads(dsn)
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        if u.query:  # uri=true, mode=…: connection options left to SQLAlchemy
            return None
        return await SqliteReads.open(u.database)
    return None


class DirectReadsHolder:
    """Opens the direct reads on first use, once, and closes them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._reads: DirectReads | None = None
        self._opened = False
        self._lock = asyncio.Lock()

    async def get(self) -> DirectReads | None:
        if self._opened:
            return self._reads
        async with self._lock:
            if not self._opened:
                self._reads = await open_direct_reads(self.url)
                self._opened = True
        return self._reads

    async def close(self) -> None:
        async with self._lock:
            if self._reads is not None:
                await self._reads.close()
            self._reads = None
            self._opened = False
