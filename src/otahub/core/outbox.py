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
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.domain.clock import Clock
from otahub.store.db import Database
from otahub.store.tables import executions, outbox

log = logging.getLogger("otahub.outbox")


@dataclass(frozen=True)
class Notification:
    """Something a device must hear about: an execution of a job was released,
    changed or deleted. The gateway renders the device's current view when sending."""

    device_id: int
    job_id: int | None
    execution_number: int | None
    kind: str  # released, changed, deleted
    payload: dict[str, Any] | None


Sink = Callable[[Sequence[Notification]], Awaitable[None]]


class OutboxPublisher:
    def __init__(
        self, db: Database, clock: Clock, sink: Sink, *, batch: int = 1000, lease: float = 60
    ) -> None:
        self.db = db
        self.clock = clock
        self.sink = sink
        self.batch = batch
        self.lease = lease
        self.wake = asyncio.Event()

    async def drain_once(self) -> int:
        """Send one batch of outbox rows; returns how many notifications went out.

        Rows are claimed in one short transaction, sent with none open (a slow or
        absent broker must not hold database locks), and stamped sent in another.
        A claim runs out after `lease` seconds, so rows a crashed or failed sender
        claimed are sent again; a failed send gives its claim back at once."""
        now = self.clock.now()
        async with self.db.transaction() as conn:
            q = (
                select(outbox)
                .where(
                    outbox.c.sent_at.is_(None),
                    or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now),
                )
                .order_by(outbox.c.id)
                .limit(self.batch)
            )
            if self.db.is_postgres:
                q = q.with_for_update(skip_locked=True)
            rows = (await conn.execute(q)).all()
            if not rows:
                return 0
            ids = [r.id for r in rows]
            await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids))
                .values(claimed_until=now + timedelta(seconds=self.lease))
            )
        try:
            batch: list[Notification] = []
            async with self.db.read() as conn:
                for r in rows:
                    batch.extend(await self._expand(conn, r))
            if batch:
                await self.sink(batch)
        except BaseException:
            async with self.db.transaction() as conn:
                await conn.execute(
                    update(outbox).where(outbox.c.id.in_(ids)).values(claimed_until=None)
                )
            raise
        async with self.db.transaction() as conn:
            await conn.execute(
                update(outbox).where(outbox.c.id.in_(ids)).values(sent_at=self.clock.now())
            )
        return len(batch) or len(ids)

    async def _expand(self, conn: AsyncConnection, row: Any) -> list[Notification]:
        if row.device_id is not None:
            return [
                Notification(row.device_id, row.job_id, row.execution_number, row.kind, row.payload)
            ]
        e = executions
        devices = await conn.execute(
            select(e.c.device_id)
            .where(
                e.c.job_id == row.job_id,
                e.c.execution_number == row.execution_number,
                e.c.device_id > row.first_device_id,
                e.c.device_id <= row.last_device_id,
            )
            .order_by(e.c.device_id)
        )
        return [
            Notification(d, row.job_id, row.execution_number, row.kind, row.payload)
            for d in devices.scalars()
        ]

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
