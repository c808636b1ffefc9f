"""Run the Alembic migrations from inside the running server (or a test)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from otahub.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe when several processes start at once."""
    async with db.transaction() as conn:
        if db.is_postgres:
            # Serialise concurrent starters; released at commit.
            await conn.execute(text("SELECT pg_advisory_xact_lock(7262533)"))
        await conn.run_sync(_upgrade, revision)


def _upgrade(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)
