"""The parts of one running otahub process and their start and stop order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from otahub.config import Settings
from otahub.core.clock import Clock, SystemClock
from otahub.core.engine import Engine, EngineSettings
from otahub.core.outbox import Notification, OutboxPublisher
from otahub.core.services import Services
from otahub.credentials import RootCredentials, load_or_create
from otahub.store.db import Database
from otahub.store.migrate import migrate

log = logging.getLogger("otahub.runtime")


class Runtime:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.resolved_database_url())
        self.services = Services.build(self.db, self.clock)
        self.engine = Engine(self.db, self.clock, EngineSettings(interval=settings.engine_interval))
        self.outbox = OutboxPublisher(self.db, self.clock, self._deliver)
        self.credentials: RootCredentials | None = None
        self.ready = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await migrate(self.db)
        self.credentials = load_or_create(
            self.settings.data_dir, self.settings.access_key_id, self.settings.secret_access_key
        )
        await self.services.accounts.ensure_access_key(
            self.credentials.access_key_id,
            self.credentials.secret_access_key,
            self.credentials.account_id,
        )
        await self.services.accounts.tenant(self.credentials.account_id)
        self._tasks = [
            asyncio.create_task(self.engine.run(self._stop), name="engine"),
            asyncio.create_task(self.outbox.run(self._stop), name="outbox"),
        ]
        self.ready = True
        log.info("runtime started")

    async def stop(self) -> None:
        self.ready = False
        self._stop.set()
        for task in self._tasks:
            try:
                await asyncio.wait_for(task, 10)
            except TimeoutError:
                task.cancel()
        await self.db.dispose()
        log.info("runtime stopped")

    async def _deliver(self, batch: Sequence[Notification]) -> None:
        # Devices are reached through the gateway once it is attached; until then
        # notifications are only recorded as sent.
        log.debug("outbox delivered %d notifications", len(batch))
