"""Roles that one process at a time may hold, across processes sharing a database."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.store.db import Database

log = logging.getLogger("otahub.leases")


class Lease:
    """A PostgreSQL advisory lock held on a connection of its own for as long as the
    process lives; when the process dies the server ends the session and releases
    it, and another process's lease takes over. On SQLite, which one process owns,
    the lease is always held."""

    def __init__(self, db: Database, key: int, *, interval: float = 2.0) -> None:
        self.db = db
        self.key = key
        self.interval = interval
        self._conn: AsyncConnection | None = None
        self._held = db.is_sqlite

    def held(self) -> bool:
        return self._held

    async def run(self, stop: asyncio.Event) -> None:
        if self.db.is_sqlite:
            return
        try:
            while not stop.is_set():
                await self._check()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            await self._release()

    async def _check(self) -> None:
        try:
            if self._conn is None:
                self._conn = await self.db.engine.connect()
                await self._conn.execution_options(isolation_level="AUTOCOMMIT")
            if self._held:
                await self._conn.execute(text("SELECT 1"))
                return
            got = (
                await self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            ).scalar()
            if got:
                self._held = True
                log.info("lease %d taken", self.key)
        except Exception:
            if self._held:
                log.warning("lease %d lost", self.key)
            self._held = False
            await self._release()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        held, self._held = self._held, self.db.is_sqlite
        if conn is not None:
            with contextlib.suppress(Exception):
                if held:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            # The session must end, not go back to the pool still holding the lock.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
