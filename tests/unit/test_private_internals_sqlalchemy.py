"""The internals of SQLAlchemy and asyncpg that otahub's store relies on (listed in
docs/private-internals.md) are still there, with the shapes otahub uses. An upgrade
that moves one fails here, not in the middle of a transaction."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import asyncpg
from sqlalchemy import Integer, bindparam, column, select, table
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection, AsyncAdapt_dbapi_module
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool
from sqlalchemy.util.concurrency import await_

from otahub.store.sqlite_inline import SQLiteDialect_otahub


def parameters(function: Callable[..., Any]) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]


def test_the_asyncio_adapter_sqlite_inline_builds_on() -> None:
    """sqlite_inline.AdaptedConnection and _Dbapi subclass the adapter SQLAlchemy's
    own aiosqlite and asyncpg dialects use, and hand it a driver connection."""
    assert parameters(AsyncAdapt_dbapi_connection.__init__) == ["dbapi", "connection"]
    assert parameters(AsyncAdapt_dbapi_module.__init__) == ["driver", "dbapi_module"]
    assert "self._connection = connection" in inspect.getsource(
        AsyncAdapt_dbapi_connection.__init__
    )
    # What the adapter calls on the driver connection and its cursors, all of which
    # sqlite_inline._Connection and _Cursor provide.
    adapter = inspect.getsource(AsyncAdapt_dbapi_connection)
    for call in ("self._connection.rollback()", "self._connection.commit()"):
        assert call in adapter, call
    assert "self._connection.close()" in adapter
    assert parameters(await_) == ["awaitable"]


def test_the_dialect_hooks_sqlite_inline_overrides() -> None:
    hook = inspect.getattr_static(SQLiteDialect_pysqlite, "_is_url_file_db")
    assert isinstance(hook, classmethod)
    assert SQLiteDialect_pysqlite._is_url_file_db(make_url("sqlite:///x.db"))
    assert not SQLiteDialect_pysqlite._is_url_file_db(make_url("sqlite://"))
    assert isinstance(inspect.getattr_static(SQLiteDialect_pysqlite, "import_dbapi"), classmethod)
    assert isinstance(inspect.getattr_static(SQLiteDialect_pysqlite, "get_pool_class"), classmethod)
    assert parameters(SQLiteDialect_pysqlite.get_driver_connection) == ["connection"]
    assert SQLiteDialect_otahub.get_pool_class(make_url("sqlite+otahub:///x.db")) is (
        AsyncAdaptedQueuePool
    )
    assert SQLiteDialect_otahub.get_pool_class(make_url("sqlite+otahub://")) is StaticPool


def test_the_compiled_statement_prepared_reads_take_apart() -> None:
    """prepared.PreparedRead reads a compiled select's positional parameter names,
    its bound values and bind types, and whether it expands an IN at execution."""
    t = table("t", column("a", Integer), column("b", Integer))
    statement = select(t.c.a).where(t.c.b == bindparam("b", None)).limit(1)
    for dialect in (PGDialect_asyncpg(), SQLiteDialect_otahub()):
        compiled = statement.compile(dialect=dialect)
        assert compiled.post_compile_params == frozenset()
        assert compiled.positiontup is not None and "b" in compiled.positiontup
        assert set(compiled.positiontup) <= set(compiled.params)
        impl = compiled.binds["b"].type.dialect_impl(dialect)
        assert parameters(impl.bind_processor) == ["dialect"]
        assert parameters(impl.result_processor) == ["dialect", "coltype"]
        expanding = select(t.c.a).where(t.c.b.in_(bindparam("bs", expanding=True)))
        assert expanding.compile(dialect=dialect).post_compile_params


def test_the_asyncpg_error_attribute_read() -> None:
    """prepared._sqlstate classes a failure by the SQLSTATE asyncpg gives it."""
    assert hasattr(asyncpg.PostgresError, "sqlstate")
    assert asyncpg.exceptions.ConnectionDoesNotExistError.sqlstate == "08003"
    assert asyncpg.exceptions.AdminShutdownError.sqlstate == "57P01"


def test_the_versions_these_were_read_from() -> None:
    """A new version may keep them all; when this fails, read the list again."""
    assert version("sqlalchemy") == "2.1.9"
    assert version("asyncpg") == "0.32.0"
