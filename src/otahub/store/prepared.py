"""Reads on a hot path: a select built and compiled once, run on the driver's own
connection.

Through SQLAlchemy every execution constructs the statement again, computes its
cache key, checks a pooled connection out and back in (with BEGIN, COMMIT and a
reset on SQLite) and processes the rows: on the device check-in that costs several
times the query itself. A `PreparedRead` pays for that once:

- on PostgreSQL it runs on a small asyncpg pool owned by the `Database`, where
  asyncpg prepares the statement once per connection and keeps it;
- on a SQLite file it runs on one read-only connection of its own, in a single trip
  to that connection's thread (WAL: readers see every commit and block no writer);
- anywhere else (an in-memory SQLite) it goes through SQLAlchemy as usual.

Values come back converted by the very result processors SQLAlchemy applies to the
same columns on the same dialect, so a row is what `conn.execute(statement)` gives.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect, make_url

if TYPE_CHECKING:
    from otahub.store.db import Database

Row = tuple[Any, ...]
Processor = Callable[[Any], Any]

DIRECT_POOL_SIZE = 8  # asyncpg connections of the hot reads, beside SQLAlchemy's pool


class PreparedRead:
    """One select with named bind parameters (`bindparam("name", None)`), compiled
    once for the database's dialect. `keys` name the columns of every row."""

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
        self._defaults = {n: compiled.params[n] for n in names}
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
            value = params[name] if name in params else self._defaults[name]
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
            async with self.db.read() as conn:
                return [tuple(r) for r in await conn.execute(self.statement, params)]
        raw = await direct.fetch(self.sql, self._args(params))
        return [self._row(r) for r in raw]


class DirectReads:
    """Where prepared reads run without SQLAlchemy: one kind per database."""

    async def fetch(self, sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PostgresReads(DirectReads):
    """A small asyncpg pool. JSON and JSONB decode as SQLAlchemy's asyncpg dialect
    sets them up on its own connections; reads run outside any transaction, as
    `Database.read()` does on PostgreSQL."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, dsn: str, size: int = DIRECT_POOL_SIZE) -> PostgresReads:
        import asyncpg

        async def setup(conn: Any) -> None:
            for name in ("json", "jsonb"):
                # SQLAlchemy's JSON bind processor hands over text already.
                await conn.set_type_codec(
                    name, encoder=str, decoder=json.loads, schema="pg_catalog"
                )

        async def reset(conn: Any) -> None:
            # These connections only ever run prepared SELECTs outside a transaction:
            # there is no session state for asyncpg's default reset (four statements,
            # one more round trip on every release) to undo.
            return None

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=size, init=setup, reset=reset)
        return cls(pool)

    async def fetch(self, sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.pool.close()


class SqliteReads(DirectReads):
    """One read-only connection to the database file, on aiosqlite's thread."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, path: str) -> SqliteReads:
        import aiosqlite

        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA busy_timeout=30000")
        await conn.execute("PRAGMA query_only=ON")
        return cls(conn)

    async def fetch(self, sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
        return await self.conn.execute_fetchall(sql, args)  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.conn.close()


async def open_direct_reads(url: str) -> DirectReads | None:
    """The direct reads for a database URL (as `Database.url` holds it), or None
    where prepared reads go through SQLAlchemy."""
    u = make_url(url)
    if u.drivername.startswith("postgresql"):
        dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
        return await PostgresReads.open(dsn)
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:":
        if u.query.get("mode") == "memory":
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
