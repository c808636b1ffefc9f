"""amqtt, embedded in otahub's process, with otahub's identities and topic rules.

amqtt treats a client publish to any `$` topic as a protocol violation and stops
that client's message loop; every AWS device publishes to `$aws/things/...`, so
`OtahubBroker` lets `$aws/` through (nothing else starting with `$`).

amqtt also takes over the session of a CONNECT's client id before it authenticates
(a clean session deletes the live one's subscriptions, a persistent one gets the
newcomer's will and credentials), so a wrong password could cut a live device off.
`OtahubBroker` reads the CONNECT and checks the login first: a refused client gets
its CONNACK and is closed without touching any session; only an accepted one takes
over, closing the live connection of its client id as Mosquitto and AWS IoT do.
A connection's reads are guarded: past a malformed or oversized packet it reads
end of stream, so garbage ends the connection with one log line.
The amqtt internals this relies on: docs/private-internals.md.
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

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import Session

from otahub.gateway.embedded.identity import Identity, may_use

log = logging.getLogger("otahub.gateway.embedded")

Authenticate = Callable[[str, str | None, str | None, bytes | None], Awaitable[Identity | None]]
OnMessage = Callable[[Identity, str, str, bytes, int], Awaitable[None]]
OnPresence = Callable[[Identity, bool], Awaitable[None]]

_GATEWAYS: dict[str, EmbeddedBroker] = {}  # how amqtt's plugins find their broker

# Twice the largest message either cloud takes from a device (Alibaba: 256 KB,
# AWS IoT: 128 KB); amqtt reads a PUBLISH payload in one read, so this bounds it.
MAX_READ_BYTES = 512 * 1024
CONNECT_TIMEOUT_S = 10.0  # from accepting a connection to its whole CONNECT
STALL_S = 60.0  # for the rest of a packet begun (128 KB over a slow cellular link)
TAKEOVER_TIMEOUT_S = 5.0  # for the connection being taken over to end
_ADMITTED = "otahub.admitted"  # session attributes: the login was checked and accepted
_REFUSED = "otahub.refused"  # session attributes: a connection closed before any session
_CONNECT_BYTE = b"\x10"
# A device may acknowledge a message twice now and then (a retry crossing its ack);
# this many strays within the window is a client sending garbage.
MAX_STRIKES = 3
STRIKE_WINDOW_S = 60.0


class GuardedReader(ReaderAdapter):
    """A connection's reads, ended on demand: once `stop` is called (a malformed
    packet, a read larger than any device packet), every read returns end of stream,
    and amqtt's reader loop ends at its next packet instead of parsing what follows."""

    def __init__(
        self, inner: ReaderAdapter, max_read: int = MAX_READ_BYTES, stall_s: float = STALL_S
    ) -> None:
        self.inner = inner
        self.max_read = max_read
        self.stall_s = stall_s
        self.stopped = False
        self.started = False

    def stop(self) -> None:
        self.stopped = True

    async def read(self, n: int = -1) -> bytes:
        if self.stopped:
            return b""
        if n > self.max_read:
            self.stop()
            log.info("a packet larger than %d bytes: connection closed", self.max_read)
            return b""
        data = await self._read(n)
        if not self.started:
            # amqtt parses whatever comes first as a CONNECT, and may wait for as many
            # bytes as garbage's second byte says; the first packet must be a CONNECT
            # ([MQTT-3.1.0-1]), whose first byte is 0x10.
            self.started = True
            if data[:1] != _CONNECT_BYTE:
                self.stop()
                return b""
        return data

    async def _read(self, n: int) -> bytes:
        if n <= 1:  # between packets amqtt waits with the client's keep-alive
            data: bytes = await self.inner.read(n)
            return data
        # Several bytes are always the rest of a packet begun: a client that stops
        # half-way would hold its connection open for ever.
        try:
            async with asyncio.timeout(self.stall_s):
                data = await self.inner.read(n)
        except TimeoutError:
            self.stop()
            log.info("a packet stalled half-way: connection closed")
            return b""
        return data

    def feed_eof(self) -> None:
        self.inner.feed_eof()


class DeviceHandler(BrokerProtocolHandler):
    """amqtt's handler, which ends a connection that sends garbage. amqtt's own
    reader loop goes on parsing (and logging) after a reserved packet type, and logs
    one warning per acknowledgement of no message: 20 KB of either wrote thousands
    of lines. Here the first closes the connection, and a few of the second in a
    minute do, with one log line."""

    strikes = 0
    first_strike = 0.0

    def _stop_reading(self) -> None:
        if isinstance(self.reader, GuardedReader):
            self.reader.stop()

    async def handle_connection_closed(self) -> None:
        self._stop_reading()
        await super().handle_connection_closed()

    async def handle_connect(self, connect: ConnectPacket) -> None:
        self._stop_reading()
        await super().handle_connect(connect)

    async def handle_puback(self, puback: Any) -> None:
        if not await self._stray(puback, self._puback_waiters):
            await super().handle_puback(puback)

    async def handle_pubrec(self, pubrec: Any) -> None:
        if not await self._stray(pubrec, self._pubrec_waiters):
            await super().handle_pubrec(pubrec)

    async def handle_pubrel(self, pubrel: Any) -> None:
        if not await self._stray(pubrel, self._pubrel_waiters):
            await super().handle_pubrel(pubrel)

    async def handle_pubcomp(self, pubcomp: Any) -> None:
        if not await self._stray(pubcomp, self._pubcomp_waiters):
            await super().handle_pubcomp(pubcomp)

    async def _stray(self, ack: Any, waiters: dict[int, Any]) -> bool:
        """Whether `ack` acknowledges no message in flight: counted, not logged."""
        header = ack.variable_header
        if header is not None and header.packet_id in waiters:
            return False
        now = asyncio.get_running_loop().time()
        if now - self.first_strike > STRIKE_WINDOW_S:
            self.strikes, self.first_strike = 0, now
        self.strikes += 1
        if self.strikes == MAX_STRIKES:
            client = _shown(self.session.client_id if self.session else None)
            log.info("acknowledgements of no message: connection closed", extra={"client": client})
            await self.handle_connection_closed()
        return True


class OtahubBroker(Broker):
    def __init__(self, config: dict[str, Any], gateway: EmbeddedBroker) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.connect_timeout = CONNECT_TIMEOUT_S
        # The task serving each admitted client id's connection: what a takeover ends.
        self._live: dict[str, asyncio.Task[Any]] = {}

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
        guarded = GuardedReader(StreamReaderAdapter(reader))
        # A refused client that hangs up first makes amqtt's close raise; that is a
        # log line, not an unhandled exception.
        try:
            await self._client_connected(listener_name, guarded, StreamWriterAdapter(writer))
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            log.info("a client connection ended abruptly: %s", type(exc).__name__)
        except asyncio.CancelledError:
            # The broker is stopping. This task is the outermost frame of the
            # connection, and asyncio's server (3.11) reports a cancelled one as an
            # unhandled error with a traceback: it ends quietly instead.
            writer.close()

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        """amqtt's, with the login checked before any session of the client id is
        touched; a refused client gets a session of its own that is never stored."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                handler, session = await DeviceHandler.init_from_connect(
                    reader, writer, self.plugins_manager
                )
        except Exception as exc:  # garbage, silence or a hang-up instead of a CONNECT
            log.info(
                "connection closed before a valid CONNECT",
                extra={"peer": remote_address, "error": type(exc).__name__},
            )
            return await self._close_refused(writer, answer=False)
        identity = await self._login(session)
        if identity is None:
            log.info("connection refused", extra={"client": _shown(session.client_id)})
            return await self._close_refused(writer, answer=True)
        client_id = session.client_id or ""
        await self._take_over(client_id)
        self.gateway.identities[client_id] = identity
        current = asyncio.current_task()
        if current is not None:
            self._live[client_id] = current
        return handler, await self._restore_session(session)

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        if client_session.attributes.get(_REFUSED):
            return
        try:
            await super()._handle_client_session(
                reader, writer, client_session, handler, server, listener_name
            )
        finally:
            client_id = client_session.client_id or ""
            if self._live.get(client_id) is asyncio.current_task():
                del self._live[client_id]

    async def _login(self, session: Session) -> Identity | None:
        peer = None
        if session.ssl_object is not None:
            peer = session.ssl_object.getpeercert(binary_form=True)
        try:
            return await self.gateway.authenticate(
                session.client_id or "", session.username, session.password, peer
            )
        except Exception:
            log.exception("authentication failed with an error")
            return None

    async def _close_refused(
        self, writer: WriterAdapter, *, answer: bool
    ) -> tuple[BrokerProtocolHandler, Session]:
        with contextlib.suppress(ConnectionError, OSError):
            if answer:
                await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
        refused = Session()
        refused.attributes[_REFUSED] = True
        return DeviceHandler(self.plugins_manager), refused

    async def _take_over(self, client_id: str) -> None:
        """End the live connection of `client_id`, if any, before an admitted login
        takes its place; its disconnect (presence) is handled before the new connect."""
        live = self._live.get(client_id)
        if live is None or live.done():
            return
        log.info("session taken over by a new login", extra={"client": _shown(client_id)})
        _, handler = self._sessions.get(client_id, (None, None))
        if handler is not None:
            await handler.handle_connection_closed()
        await asyncio.wait({live}, timeout=TAKEOVER_TIMEOUT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(self.plugins_manager.wait_fired_events()), TAKEOVER_TIMEOUT_S
            )

    async def _restore_session(self, session: Session) -> Session:
        """amqtt's session cache, run once the login is accepted: a clean session
        starts afresh, a persistent one resumes the stored session of its client id."""
        client_id = session.client_id or ""
        session.parent = 0
        if session.clean_session:
            await self._delete_session(client_id)
        elif client_id in self._sessions:
            stored_session, _ = self._sessions[client_id]
            for name in (
                "will_flag", "will_message", "will_topic", "will_qos", "will_retain",
                "keep_alive", "username", "password", "ssl_object",
            ):  # fmt: skip
                setattr(stored_session, name, getattr(session, name))
            session, session.parent = stored_session, 1
        session.attributes[_ADMITTED] = True
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return session

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


def _shown(client_id: str | None) -> str:
    """A client id as a log line shows it: a hostile one may be 64 KB long."""
    text = client_id or ""
    return text if len(text) <= 128 else text[:128] + "…"


@dataclass
class GatewayConfig:
    gateway: str = ""


class DeviceAuth(BaseAuthPlugin):
    """The login was checked by `OtahubBroker` before amqtt looked at any session;
    this reports that verdict to amqtt's own authentication step."""

    Config = GatewayConfig

    async def authenticate(self, *, session: Session) -> bool | None:
        return bool(session.attributes.pop(_ADMITTED, False))


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
        self.broker = OtahubBroker(self.config, self)
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
