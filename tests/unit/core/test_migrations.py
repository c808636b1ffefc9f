"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from otahub.store.db import Database
from otahub.store.tables import metadata


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": False})
    return list(compare_metadata(ctx, metadata))


async def test_migrated_schema_matches_the_tables(db: Database) -> None:
    async with db.read() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []
