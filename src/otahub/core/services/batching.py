"""Group commit for device writes: reports that arrive while a batch is being
written wait and go together in the next one.

A fleet reports thousands of status changes a second; one transaction each costs a
BEGIN, a COMMIT and a few statements per report, and on SQLite every writer queues
on one lock. `ReportWriter` keeps at most one batch in flight per process: when
the load is light a batch holds one report and is written at once; under load the
reports that arrived meanwhile share the next transaction. Each report is checked
on its own and gets its own answer; the batch's commit makes them durable together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("otahub.core.batching")

MAX_BATCH = 500
RETRIES = 3  # a batch that lost a deadlock (PostgreSQL aborts one side) runs again
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure


class BatchItem(Protocol):
    result: Any
    error: BaseException | None


T = TypeVar("T", bound=BatchItem)


class ReportWriter(Generic[T]):
    """Runs `write(batch)`, one batch at a time. `write` sets each item's `result`
    or `error`; an exception it raises (the transaction failed) is every item's."""

    def __init__(self, write: Callable[[list[T]], Awaitable[None]]) -> None:
        self.write = write
        self._waiting: list[tuple[T, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            batch = self._waiting[:MAX_BATCH]
            del self._waiting[:MAX_BATCH]
            try:
                await self._write(batch)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise  # cancelled: the loop is going away
                continue
            for item, future in batch:
                if future.done():
                    continue  # its caller gave up waiting; the write stands
                if item.error is not None:
                    future.set_exception(item.error)
                else:
                    future.set_result(item.result)

    async def _write(self, batch: list[tuple[T, asyncio.Future[Any]]]) -> None:
        items = [item for item, _ in batch]
        for attempt in range(RETRIES):
            for item in items:
                item.result, item.error = None, None
            try:
                await self.write(items)
                return
            except DBAPIError as exc:
                if attempt == RETRIES - 1 or _sqlstate(exc) not in RETRYABLE_SQLSTATES:
                    raise
                log.info("a batch of %d writes lost a deadlock; running it again", len(items))


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None) or getattr(getattr(orig, "__cause__", None), attr, None)
        if code:
            return str(code)
    return None


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """Lookups by key that arrive together become one query for all their keys.

    At most one query runs at a time; the keys asked for meanwhile go into the next.
    A lookup never sees older data than a query started after it was asked, so a
    reader still sees every write committed before it asked."""

    def __init__(
        self, fetch: Callable[[list[K]], Awaitable[dict[K, V]]], *, max_keys: int = 1000
    ) -> None:
        self.fetch = fetch
        self.max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        """The value for `key`, None when the query found none."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._waiting:
            keys = list(self._waiting)[: self.max_keys]
            waiters = {k: self._waiting.pop(k) for k in keys}
            try:
                found = await self.fetch(keys)
            except BaseException as exc:
                for futures in waiters.values():
                    for f in futures:
                        if not f.done():
                            f.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for k, futures in waiters.items():
                value = found.get(k)
                for f in futures:
                    if not f.done():
                        f.set_result(value)


class SingleFlight(Generic[K, V]):
    """Concurrent calls of `load(key)` with one key share one call."""

    def __init__(self, load: Callable[[K], Awaitable[V]]) -> None:
        self.load = load
        self._running: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K) -> V:
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(self.load(key))
            running.add_done_callback(lambda _: self._running.pop(key, None))
        return await asyncio.shield(running)
