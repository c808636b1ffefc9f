"""Request/response over MQTT for device code: one reader task routes incoming
messages to whoever waits for that topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import aiomqtt


class TopicRouter:
    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self._queues: dict[str, asyncio.Queue[bytes]] = defaultdict(asyncio.Queue)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task

    async def _read(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self._queues[str(message.topic)].put_nowait(payload)

    def queue(self, topic: str) -> asyncio.Queue[bytes]:
        return self._queues[topic]

    async def next(self, topic: str, seconds: float) -> bytes:
        """The next message on `topic`; TimeoutError after `seconds`."""
        async with asyncio.timeout(seconds):
            return await self._queues[topic].get()

    def drain(self, topic: str) -> None:
        q = self._queues[topic]
        while not q.empty():
            q.get_nowait()
