"""An engine in its own process, for the crash and concurrency tests.

Ticks until every job has released all its targets, then prints what it released.
`serve` instead forks one such engine per line read (`URL CHUNK`), so that a test
killing many engines pays for the imports once: it prints `pid N`, then the
engine's own lines, then `exit CODE`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback

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


def serve() -> None:
    for line in sys.stdin:
        url, chunk = line.split()
        pid = os.fork()
        if pid == 0:  # the engine: everything is imported, nothing is open yet
            code = 0
            try:
                asyncio.run(main(url, int(chunk)))
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
