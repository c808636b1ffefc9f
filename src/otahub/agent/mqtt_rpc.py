"""Request/response over MQTT for device code: incoming messages are routed to
whoever waits for that topic.

A device talks through a `DeviceLink`: either its own MQTT connection
(`DedicatedLink`, what real hardware has) or a seat on a connection shared by many
simulated devices (`SharedConnection.link`), so that a fleet simulator does not need
one socket and one client per device."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

import aiomqtt


class TopicRouter:
    """One queue per topic. Given a client, `start` runs a reader task that fills
    them from its messages; otherwise whoever reads the connection calls `put`."""

    def __init__(self, client: aiomqtt.Client | None = None) -> None:
        self.client = client
        self._queues: dict[str, asyncio.Queue[bytes]] = defaultdict(asyncio.Queue)
        self._handlers: dict[str, Callable[[str, bytes], bool]] = {}
        self._task: asyncio.Task[None] | None = None

    def add_handler(self, prefix: str, handler: Callable[[str, bytes], bool]) -> None:
        """Messages on topics under `prefix` go to `handler` first; it returns True
        when it took the message, which then is not queued."""
        self._handlers[prefix] = handler

    def start(self) -> None:
        if self._task is None and self.client is not None:
            self._task = asyncio.create_task(self._read(self.client))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
            self._task = None

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.put(str(message.topic), payload)

    def put(self, topic: str, payload: bytes) -> None:
        for prefix, handler in self._handlers.items():
            if topic.startswith(prefix) and handler(topic, payload):
                return
        self._queues[topic].put_nowait(payload)

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

    def forget(self, prefix: str) -> None:
        for topic in [t for t in self._queues if t.startswith(prefix)]:
            del self._queues[topic]


class DeviceLink(Protocol):
    router: TopicRouter

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None: ...

    async def subscribe(self, topics: list[str], qos: int = 1) -> None: ...

    async def unsubscribe(self, topics: list[str]) -> None: ...


class DedicatedLink:
    """A device's own MQTT connection; one reader task routes its messages."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.router = TopicRouter(client)

    def start(self) -> None:
        self.router.start()

    async def stop(self) -> None:
        await self.router.stop()

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        await self.client.publish(topic, payload, qos=qos)

    async def subscribe(self, topics: list[str], qos: int = 1) -> None:
        await self.client.subscribe([(t, qos) for t in topics])

    async def unsubscribe(self, topics: list[str]) -> None:
        await self.client.unsubscribe(topics)


class SharedConnection:
    """One MQTT connection carrying the topics of many devices (`$aws/things/{name}/…`),
    for simulators on an open broker. Each device gets a `SharedLink`; incoming
    messages go to the device named in their topic."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self._routers: dict[str, TopicRouter] = {}
        self._task: asyncio.Task[None] | None = None

    def link(self, thing: str) -> SharedLink:
        router = self._routers.setdefault(thing, TopicRouter())
        return SharedLink(self, router)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
            self._task = None

    async def _read(self) -> None:
        async for message in self.client.messages:
            topic = str(message.topic)
            parts = topic.split("/", 3)
            router = self._routers.get(parts[2]) if len(parts) > 3 else None
            if router is not None:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                router.put(topic, payload)


class SharedLink:
    def __init__(self, connection: SharedConnection, router: TopicRouter) -> None:
        self.connection = connection
        self.router = router

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        await self.connection.client.publish(topic, payload, qos=qos)

    async def subscribe(self, topics: list[str], qos: int = 1) -> None:
        await self.connection.client.subscribe([(t, qos) for t in topics])

    async def unsubscribe(self, topics: list[str]) -> None:
        await self.connection.client.unsubscribe(topics)
