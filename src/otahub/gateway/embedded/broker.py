"""amqtt, embedded in otahub's process, with otahub's identities and topic rules.

amqtt treats a client publish to any `$` topic as a protocol violation and stops
that client's message loop; every AWS device publishes to `$aws/things/...`, so
`OtahubBroker` lets `$aws/` through (nothing else starting with `$`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import Session

from otahub.gateway.embedded.identity import Identity, may_use

log = logging.getLogger("otahub.gateway.embedded")

Authenticate = Callable[[str, str | None, str | None, bytes | None], Awaitable[Identity | None]]
OnMessage = Callable[[Identity, str, str, bytes, int], Awaitable[None]]
OnPresence = Callable[[Identity, bool], Awaitable[None]]

_GATEWAYS: dict[str, EmbeddedBroker] = {}  # how amqtt's plugins find their broker


class OtahubBroker(Broker):
    async def _handle_message_delivery(
        self, client_session: Session, handler: Any, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        message = wait_deliver.result()
        topic = getattr(message, "topic", None) or ""
        if not topic.startswith("$aws/"):
            return bool(
                await super()._handle_message_delivery(client_session, handler, wait_deliver)
            )
        # amqtt's own path refuses every `$` topic ([MQTT-4.7.2-1]) and drops the
        # client's loop; `$aws/` is what AWS devices must publish on. The same
        # checks otherwise: the topic rules, then delivery to subscribers.
        if not await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH):
            log.info("publish refused", extra={"client": client_session.client_id, "topic": topic})
            return True
        await self.plugins_manager.fire_event(
            "broker_message_broadcast", client_id=client_session.client_id, message=message
        )
        await self._broadcast_message(client_session, topic, message.data)
        return True

    async def stream_connected(self, reader: Any, writer: Any, listener_name: str) -> None:
        # A refused client that hangs up first makes amqtt's close raise; that is a
        # log line, not an unhandled exception.
        try:
            await super().stream_connected(reader, writer, listener_name)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            log.info("a client connection ended abruptly: %s", type(exc).__name__)

    async def send_to(self, client_id: str, topic: str, payload: bytes, qos: int) -> bool:
        """Deliver to one connected client, subscribed or not (AWS answers requests so)."""
        _, handler = self._sessions.get(client_id, (None, None))
        if handler is None:
            return False
        await handler.mqtt_publish(topic, payload, qos, retain=False)
        return True

    async def write_to(self, client_id: str, frames: bytes) -> bool:
        """Write packets framed already (QoS 0 PUBLISHes: nothing to track) to one
        connected client in one go, between amqtt's own packets."""
        _, handler = self._sessions.get(client_id, (None, None))
        writer = handler.writer if handler is not None else None
        if writer is None:
            return False
        try:
            async with handler._write_lock:
                writer.write(frames)
                await writer.drain()
        except (ConnectionError, OSError):
            return False  # amqtt's reader sees the connection end and cleans up
        return True


@dataclass
class GatewayConfig:
    gateway: str = ""


class DeviceAuth(BaseAuthPlugin):
    Config = GatewayConfig

    async def authenticate(self, *, session: Session) -> bool | None:
        broker = _GATEWAYS[self.config.gateway]
        peer = None
        if session.ssl_object is not None:
            peer = session.ssl_object.getpeercert(binary_form=True)
        try:
            identity = await broker.authenticate(
                session.client_id or "", session.username, session.password, peer
            )
        except Exception:
            log.exception("authentication failed with an error")
            identity = None
        if identity is None:
            log.info("connection refused", extra={"client": session.client_id})
            return False
        broker.identities[session.client_id or ""] = identity
        return True


class TopicAcl(BaseTopicPlugin):
    Config = GatewayConfig

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        if session is None or topic is None:
            return False
        if action is Action.RECEIVE:
            return True  # what a client may receive was decided when it subscribed
        identity = _GATEWAYS[self.config.gateway].identities.get(session.client_id or "")
        return identity is not None and may_use(identity, topic)


class Events(BasePlugin[Any]):
    Config = GatewayConfig

    async def on_broker_message_broadcast(self, *, client_id: str, message: Any) -> None:
        broker = _GATEWAYS[self.config.gateway]
        identity = broker.identities.get(client_id)
        if identity is not None and identity.kind != "service":
            broker.enqueue(
                identity, client_id, message.topic, bytes(message.data), message.qos or 0
            )

    async def on_broker_client_connected(self, *, client_id: str, client_session: Any) -> None:
        await _GATEWAYS[self.config.gateway].presence(client_id, True)

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Any) -> None:
        await _GATEWAYS[self.config.gateway].presence(client_id, False)


class EmbeddedBroker:
    """Starts amqtt on a plain and (optionally) a TLS listener and connects it to
    otahub: identities, topic rules, inbound device messages and presence."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        authenticate: Authenticate,
        on_message: OnMessage,
        on_presence: OnPresence,
        tls: dict[str, str] | None = None,
        tls_port: int | None = None,
        workers: int = 8,
    ) -> None:
        self.key = uuid.uuid4().hex
        self.authenticate = authenticate
        self.on_message = on_message
        self.on_presence = on_presence
        self.identities: dict[str, Identity] = {}
        # One queue per worker, a client always on the same one: its messages are
        # handled in the order it sent them (a progress report before its version).
        self.inbound: list[asyncio.Queue[tuple[Identity, str, str, bytes, int]]] = [
            asyncio.Queue(10_000 // workers + 1) for _ in range(workers)
        ]
        listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{host}:{port}"}}
        if tls and tls_port:
            listeners["tls"] = {"type": "tcp", "bind": f"{host}:{tls_port}", "ssl": True, **tls}
        plugin = {"gateway": self.key}
        self.config = {
            "listeners": listeners,
            "plugins": {
                f"{__name__}.{cls}": dict(plugin) for cls in ("DeviceAuth", "TopicAcl", "Events")
            },
        }
        self.workers = workers
        self.broker: OtahubBroker | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        _GATEWAYS[self.key] = self
        self.broker = OtahubBroker(self.config)
        await self.broker.start()
        self._tasks = [asyncio.create_task(self._work(q)) for q in self.inbound]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.shutdown()
        _GATEWAYS.pop(self.key, None)

    def is_running(self) -> bool:
        return self.broker is not None

    def enqueue(
        self, identity: Identity, client_id: str, topic: str, payload: bytes, qos: int = 1
    ) -> None:
        queue = self.inbound[zlib.crc32(client_id.encode()) % len(self.inbound)]
        queue.put_nowait((identity, client_id, topic, payload, qos))

    async def _work(self, queue: asyncio.Queue[tuple[Identity, str, str, bytes, int]]) -> None:
        # Messages are handled off amqtt's loop so a slow handler cannot stall it.
        while True:
            identity, client_id, topic, payload, qos = await queue.get()
            try:
                await self.on_message(identity, client_id, topic, payload, qos)
            except Exception:
                log.exception("handling a device message failed")

    async def presence(self, client_id: str, connected: bool) -> None:
        identity = self.identities.get(client_id)
        if not connected:
            self.identities.pop(client_id, None)
        if identity is not None:
            try:
                await self.on_presence(identity, connected)
            except Exception:
                log.exception("presence update failed")

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        assert self.broker is not None
        await self.broker.internal_message_broadcast(topic, payload, qos)

    async def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 1) -> bool:
        assert self.broker is not None
        return await self.broker.send_to(client_id, topic, payload, qos)

    async def write_to(self, client_id: str, frames: bytes) -> bool:
        assert self.broker is not None
        return await self.broker.write_to(client_id, frames)
