"""The outbox publisher: sends committed notifications and stamps them sent.

Delivery is at least once: a crash between sending and stamping sends again,
which MQTT QoS 1 allows and devices tolerate. A notification is never sent for a
change that rolled back, because its row rolled back with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from otahub.core.clock import Clock
from otahub.store.db import Database
from otahub.store.tables import outbox

log = logging.getLogger("otahub.outbox")


@dataclass(frozen=True)
class Notification:
    id: int
    device_id: int
    execution_id: int | None
    job_id: int | None
    kind: str  # released, changed, deleted
    payload: dict[str, Any] | None


Sink = Callable[[Sequence[Notification]], Awaitable[None]]


class OutboxPublisher:
    def __init__(self, db: Database, clock: Clock, sink: Sink, *, batch: int = 1000) -> None:
        self.db = db
        self.clock = clock
        self.sink = sink
        self.batch = batch
        self.wake = asyncio.Event()

    async def drain_once(self) -> int:
        """Send one batch; returns how many were sent."""
        async with self.db.transaction() as conn:
            q = select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id)
            q = q.limit(self.batch)
            if self.db.is_postgres:
                q = q.with_for_update(skip_locked=True)
            rows = (await conn.execute(q)).all()
            if not rows:
                return 0
            batch = [
                Notification(r.id, r.device_id, r.execution_id, r.job_id, r.kind, r.payload)
                for r in rows
            ]
            await self.sink(batch)
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([n.id for n in batch]))
                .values(sent_at=self.clock.now())
            )
            return len(batch)

    async def drain(self) -> int:
        total = 0
        while n := await self.drain_once():
            total += n
        return total

    async def run(
        self,
        stop: asyncio.Event,
        *,
        interval: float = 0.2,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        """Drain while `ready()` (e.g. the broker is connected) until `stop` is set."""
        while not stop.is_set():
            try:
                if ready():
                    await self.drain()
            except Exception:
                log.exception("outbox drain failed")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), interval)
