"""An engine in its own process, for the crash and concurrency tests.

Ticks until every job has released all its targets, then prints what it released.
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import select

from otahub.core.engine import Engine, EngineSettings
from otahub.domain.clock import SystemClock
from otahub.store.db import Database
from otahub.store.tables import jobs


async def main(url: str, chunk: int) -> None:
    db = Database(url)
    engine = Engine(db, SystemClock(), EngineSettings(chunk=chunk))
    print("ticking", flush=True)
    while True:
        await engine.tick()
        async with db.read() as conn:
            pending = (
                await conn.execute(select(jobs.c.id).where(jobs.c.initial_done.is_(False)))
            ).first()
        if pending is None:
            break
    print(f"released {engine.released_total}", flush=True)
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
