"""Shared fixtures: a migrated database on SQLite and on the real PostgreSQL, a fake
clock, the services and the engine."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from otahub.core.engine import Engine, EngineSettings
from otahub.core.services import Services
from otahub.domain.clock import FakeClock
from otahub.store.db import Database
from otahub.store.migrate import migrate
from otahub.store.tables import metadata

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
REQUIRE_SERVICES = os.environ.get("OTAHUB_REQUIRE_SERVICES") == "1"


def service_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) a test whose real service is not reachable."""
    if service_up(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} and OTAHUB_REQUIRE_SERVICES=1")
    pytest.skip(message)


async def _create_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "otahub.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    name = f"otahub_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_pg_database(name))
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    asyncio.run(_migrate(url))
    yield url
    asyncio.run(_drop_pg_database(name))


def fresh_sqlite_url(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "otahub.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


# The sequences owned by the schema's tables (serial and identity columns), which a
# fresh database starts at 1.
_OWNED_SEQUENCES = """
SELECT s.oid::regclass::text
FROM pg_class s
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
    AND d.deptype IN ('a', 'i')
JOIN pg_class t ON t.oid = d.refobjid
WHERE s.relkind = 'S' AND t.relnamespace = current_schema()::regnamespace
    AND t.relname = ANY(:names)
"""


async def truncate_all(db: Database) -> None:
    """Empty every table and restart its ids, as TRUNCATE … RESTART IDENTITY would.
    DELETE, children first, in one round trip: on tables of a test's few rows it
    takes milliseconds where TRUNCATE of all of them takes ~150 ms, before each of
    the many PostgreSQL tests."""
    from sqlalchemy import text

    names = [t.name for t in metadata.sorted_tables]
    async with db.transaction() as conn:
        sequences = (await conn.execute(text(_OWNED_SEQUENCES), {"names": names})).scalars()
        script = [f'DELETE FROM "{name}"' for name in reversed(names)]
        script += [f"SELECT setval('{seq}', 1, false)" for seq in sequences]
        raw = await conn.get_raw_connection()
        await raw.driver_connection.execute("; ".join(script))  # type: ignore[union-attr]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    """Every test that takes a database runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return fresh_sqlite_url(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    if database.is_postgres:
        await truncate_all(database)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def services(db: Database, clock: FakeClock) -> Services:
    return Services.build(db, clock)


@pytest.fixture
def engine(db: Database, clock: FakeClock) -> Engine:
    return Engine(db, clock, EngineSettings(chunk=500))
